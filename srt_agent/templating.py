"""Jinja2 rendering of the files in templates/, with shell-quoting filters."""

from __future__ import annotations

import re
import shlex
from functools import lru_cache
from pathlib import Path

# an installed wheel carries templates/ as srt_agent/templates (pyproject.toml); a checkout has it at its top
_PACKAGED_TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATES_DIR = _PACKAGED_TEMPLATES if _PACKAGED_TEMPLATES.is_dir() else Path(__file__).resolve().parent.parent / "templates"


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _qjoin(values: list) -> str:
    return " ".join(shlex.quote(str(v)) for v in values)


def _yaml_str(value: object) -> str:
    """A YAML double-quoted scalar (JSON string syntax is a subset of YAML's)."""
    import json

    return json.dumps(str(value), ensure_ascii=False)


def _yaml_bool(value: object) -> str:
    return "true" if bool(value) else "false"


_SBATCH_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


def sbatch_quote(value: object) -> str:
    """Quote a value for an `#SBATCH --opt=VALUE` line, which sbatch parses, not bash.

    sbatch honours backslash escapes even inside single quotes (so shlex.quote would lose every
    backslash), reads one line per option and treats an unquoted # as a comment. Double quotes
    with \\ and \" escapes round-trip everything except line breaks, which are refused.
    """
    text = str(value)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"{text!r}: control characters and line breaks cannot appear in an #SBATCH line")
    if _SBATCH_PLAIN.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
        trim_blocks=True, lstrip_blocks=True, autoescape=False,
    )
    env.filters["q"] = _q
    env.filters["qjoin"] = _qjoin
    env.filters["yaml_str"] = _yaml_str
    env.filters["yaml_bool"] = _yaml_bool
    env.filters["sbatch_q"] = sbatch_quote
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
