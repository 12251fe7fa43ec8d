"""Whether a job file is an incumbent srt-slurm (v1) recipe: only its top-level sections and a few
keys are looked at, so a file in this project's format costs no import of the converter."""

from __future__ import annotations

from typing import Any

from .mapping import INCUMBENT_KEYS, INCUMBENT_PREFIXES, INCUMBENT_SECTIONS


def is_incumbent(data: Any) -> bool:
    """A recipe in the incumbent's format, recognised by sections or keys this project does not have."""
    if not isinstance(data, dict):
        return False
    if any(k in INCUMBENT_SECTIONS or str(k).startswith(INCUMBENT_PREFIXES) for k in data):
        return True
    for section, key in INCUMBENT_KEYS:
        if isinstance(data.get(section), dict) and key in data[section]:
            return True
    return False
