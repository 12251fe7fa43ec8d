"""Which values are secrets, and how they are kept out of logs, status files and dry runs."""

from __future__ import annotations

import re
from functools import lru_cache

_SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY|ACCESS_KEY|PRIVATE_KEY|_KEY$)", re.IGNORECASE)
REDACTED = "***"


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    """Cached: a dry-run asks about the same few names hundreds of times (every process's environment,
    several passes), and a case-insensitive search is slow (CLI start-up: ~2 ms)."""
    return bool(_SECRET_NAME.search(name))


# `token` only as the flag's last word: --hf-token is a secret, --max-total-tokens and
# --skip-tokenizer-init are not
_SECRET_FLAG = re.compile(r"(api-key|(^|-)token$|secret|password|passwd|credential)", re.IGNORECASE)


def is_secret_flag(flag: str) -> bool:
    """An engine flag whose value is a secret (e.g. --api-key, --admin-api-key)."""
    return bool(_SECRET_FLAG.search(flag))


def split_env(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain, secret) parts of an environment."""
    plain = {k: v for k, v in env.items() if not is_secret_name(k)}
    secret = {k: v for k, v in env.items() if is_secret_name(k)}
    return plain, secret


def redact_env(env: dict[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) and v else v) for k, v in env.items()}


def redact_text(text: str, secrets: list[str]) -> str:
    for s in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


ENV_SECTIONS = ("prefill_environment", "decode_environment", "aggregated_environment", "frontend_environment")
SECRETS_ENV_VAR = "SRT_SECRET_ENV"


def split_job_secrets(job_json: dict) -> tuple[dict, dict[str, dict[str, str]]]:
    """(job JSON with secret environment values replaced by ***, the secret values by section).

    Files in the run directory keep the redacted form; the values travel to the agent in the
    SRT_SECRET_ENV environment variable (sbatch exports the submitting environment)."""
    import copy

    redacted = copy.deepcopy(job_json)
    secrets: dict[str, dict[str, str]] = {}
    backend = redacted.get("backend") or {}
    for section in ENV_SECTIONS:
        env = backend.get(section) or {}
        for name, value in env.items():
            if is_secret_name(name) and value:
                secrets.setdefault(section, {})[name] = value
                env[name] = REDACTED
    return redacted, secrets


def merge_job_secrets(job_json: dict, secrets: dict[str, dict[str, str]]) -> list[str]:
    """Put secret values back into a redacted job JSON; returns the names still missing."""
    missing = []
    backend = job_json.get("backend") or {}
    for section in ENV_SECTIONS:
        env = backend.get(section) or {}
        for name, value in env.items():
            if value == REDACTED and is_secret_name(name):
                if name in secrets.get(section, {}):
                    env[name] = secrets[section][name]
                else:
                    missing.append(f"backend.{section}.{name}")
    return missing
