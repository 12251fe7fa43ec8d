"""The one alias resolver: model and container names from srtslurm.yaml -> absolute paths."""

from __future__ import annotations

from .errors import ConfigError


def resolve_alias(value: str, aliases: dict[str, str], *, kind: str, key: str,
                  file: str | None = None, line: int | None = None, cluster_file: str | None = None) -> str:
    """Return the path for `value`: a known alias, or an absolute path used as is.

    `kind` names the srtslurm.yaml section ("model_paths" or "containers") for the error message.
    """
    if value in aliases:
        return aliases[value]
    if value.startswith("/"):
        return value
    from .validation import did_you_mean

    known = ", ".join(sorted(aliases)) or "(none defined)"
    guess = did_you_mean(value, aliases)
    where = cluster_file or "srtslurm.yaml"
    hint = f"did you mean '{guess}'? " if guess else ""
    hint += f"known {kind} aliases in {where}: {known}; or give an absolute path"
    raise ConfigError(f"'{value}' is neither a known alias nor an absolute path",
                      file=file, line=line, key=key, value=value, hint=hint)
