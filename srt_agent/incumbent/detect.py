"""Whether a job file is an incumbent srt-slurm (v1) recipe: only its top-level sections and a few
keys are looked at, so a file in this project's format costs no import of the converter or its
mapping table (CLI start-up; mapping.py re-exports these names)."""

from __future__ import annotations

from typing import Any

# top-level sections only the incumbent's format has: one of them marks a file as a recipe
INCUMBENT_SECTIONS = ("dynamo", "frontend", "health_check", "sbatch_directives", "environment",
                      "container_mounts", "srun_options", "output", "infra", "enable_config_dump",
                      "reporting", "identity", "base")
INCUMBENT_PREFIXES = ("override_", "zip_override_")
# keys inside shared sections that only the incumbent's format has
INCUMBENT_KEYS = (("backend", "type"), ("backend", "mocker_config"), ("backend", "engine_type"), ("backend", "speedup_ratio"),
                  ("benchmark", "num_warmup_mult"), ("benchmark", "num_prompts_mult"),
                  ("benchmark", "use_chat_template"), ("benchmark", "custom_tokenizer"),
                  ("benchmark", "tokenizer_mode"))


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


def is_override_file(data: Any) -> bool:
    """An override file (srt-slurm's `base:` plus `override_<name>:` / `zip_override_<name>:` variants)."""
    return isinstance(data, dict) and "base" in data
