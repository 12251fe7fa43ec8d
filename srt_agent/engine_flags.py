"""sglang_config keys checked before submitting, against the option list of the SGLang release the job
runs (srt_agent/engine_options/*.json, made by scripts/gen-engine-options from the published wheels).

The release is backend.sglang_version, else what the container's name says (`...sglang+v0.5.5.sqsh`,
`lmsysorg/sglang:v0.5.8-cu130`). For an unknown release srtctl only warns; the runtime preflight
(`--help` of the engine in the container) stays the last line of defence. Which lists hold an
engine's vocabulary is the engine's `flag_vocabulary` (srt_agent/engines); the simulated engine
and Dynamo's mocker have none here (their own flags are checked by the preflight or not at all).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from .engines import engine_for
from .errors import ConfigError
from .validation import did_you_mean

SGLANG_SECTION = {"prefill": "prefill", "decode": "decode", "agg": "aggregated"}  # role -> sglang_config section

DATA_DIR = Path(__file__).resolve().parent / "engine_options"
_CONTAINER_VERSION = re.compile(r"sglang[^0-9/]{0,3}(\d+\.\d+\.\d+(?:\.?post\d+|rc\d+)?)", re.IGNORECASE)


def version_from_container(image: str | None) -> str | None:
    m = _CONTAINER_VERSION.search(image or "")
    return m.group(1) if m else None


@lru_cache(maxsize=None)
def options(kind: str, version: str) -> frozenset[str] | None:
    """Long options (without --) of `sglang` or `dynamo-sglang` at `version`; None when not shipped."""
    path = DATA_DIR / f"{kind}-{version}.json"
    if not path.is_file():
        return None
    return frozenset(json.loads(path.read_text())["options"])


def shipped_versions(kind: str = "sglang") -> list[str]:
    found = [p.stem[len(kind) + 1:] for p in DATA_DIR.glob(f"{kind}-*.json") if p.stem[len(kind) + 1:][:1].isdigit()]
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else 0 for x in re.split(r"[.]", v)])


def job_sglang_version(job, container: str | None) -> tuple[str | None, str]:
    """(version, where it came from)."""
    if job.backend.sglang_version:
        return job.backend.sglang_version, "backend.sglang_version"
    v = version_from_container(container)
    return (v, f"the container name {container}") if v else (None, "")


def check(job, container: str | None, path: str, line_of) -> tuple[list[ConfigError], list[str]]:
    """(errors, warnings) for every sglang_config key. `line_of(section, key)` gives the key's line."""
    vocabulary = engine_for(job.backend).flag_vocabulary  # e.g. ("sglang", "dynamo-sglang")
    if not vocabulary or not any(job.role_flags(r) for r in job.roles):
        return [], []
    version, source = job_sglang_version(job, container)
    if version is None:
        return [], ["the SGLang version is unknown (set backend.sglang_version, or name the container "
                    "...sglang-vX.Y.Z...): sglang_config keys are checked only by the job's preflight"]
    known = options(vocabulary[0], version)
    if known is None:
        return [], [f"no option list for SGLang {version} (from {source}; shipped: "
                    f"{', '.join(shipped_versions())}): sglang_config keys are checked only by the job's "
                    "preflight; `scripts/gen-engine-options sglang " + version + "` adds it"]
    warnings: list[str] = []
    what = f"SGLang {version}"
    if "dynamo-sglang" in vocabulary:  # Dynamo's worker: SGLang's flags and its own
        extra = options("dynamo-sglang", job.backend.dynamo_version)
        if extra is None:
            warnings.append(f"no option list for Dynamo {job.backend.dynamo_version}'s dynamo.sglang: "
                            "its own flags are not checked before the job runs")
            return [], warnings
        known = known | extra
        what += f" + dynamo.sglang {job.backend.dynamo_version}"
    errors = []
    for role in job.roles:
        section = SGLANG_SECTION[role]
        for key in job.role_flags(role):
            flag = str(key).lstrip("-").replace("_", "-")
            if flag in known:
                continue
            guess = did_you_mean(flag, known)
            errors.append(ConfigError(
                f"'{key}' is not an option of {what} (version from {source})", file=path,
                line=line_of(section, key), key=f"backend.sglang_config.{section}.{key}",
                hint=(f"did you mean '{guess}'?" if guess else f"see `python -m sglang.launch_server --help` of {what}")
                + (" (or set backend.sglang_version to the release the container has)"
                   if source.startswith("the container") else "")))
    return errors, warnings
