"""The one alias resolver: model and container names from srtslurm.yaml -> absolute paths."""

from __future__ import annotations

import re

from .errors import ConfigError
from .validation import did_you_mean

# a container registry reference (`lmsysorg/sglang:v0.5.8`, `nvcr.io/nvidia/x:25.01`, `nvcr.io#nvidia/x`):
# pyxis imports it itself, so it is passed on as it is
_REGISTRY_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(:[0-9]+)?[/#][A-Za-z0-9._/-]*[A-Za-z0-9]"
                           r"(:[A-Za-z0-9._-]+)?(@sha256:[0-9a-f]{64})?|[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9._-]+")


def is_registry_reference(value: str) -> bool:
    return bool(_REGISTRY_REF.fullmatch(value)) and not value.startswith("/")


def resolve_alias(value: str, aliases: dict[str, str], *, kind: str, key: str,
                  file: str | None = None, line: int | None = None, cluster_file: str | None = None,
                  registry: bool = False) -> str:
    """Return the path for `value`: a known alias, or an absolute path used as is.

    `kind` names the srtslurm.yaml section ("model_paths" or "containers") for the error message.
    """
    if value in aliases:
        return aliases[value]
    if value.startswith("/"):
        return value
    if registry and is_registry_reference(value):
        return value
    known = ", ".join(sorted(aliases)) or "(none defined)"
    guess = did_you_mean(value, aliases)
    where = cluster_file or "srtslurm.yaml"
    hint = f"did you mean '{guess}'? " if guess else ""
    hint += f"known {kind} aliases in {where}: {known}; or give an absolute path"
    if registry:
        hint += " or a registry reference like lmsysorg/sglang:v0.5.8"
    raise ConfigError(f"'{value}' is neither a known alias nor an absolute path",
                      file=file, line=line, key=key, value=value, hint=hint)
