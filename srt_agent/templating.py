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


_OPTIONS = {"keep_trailing_newline": True, "trim_blocks": True, "lstrip_blocks": True, "autoescape": False}


def _bytecode_cache(jinja2):
    """Compiled templates kept between runs in the user's cache directory, so a run does not compile
    them again (CLI start-up: compiling is most of the first render). Jinja2 checks each template's
    source checksum; the directory name carries the Jinja2 version and the options the code depends on.
    Nothing is cached when the directory cannot be made or written."""
    import hashlib
    import os

    class QuietCache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket):
            try:
                super().load_bytecode(bucket)
            except Exception:  # unreadable, truncated or from another version: compile instead
                bucket.reset()

        def dump_bytecode(self, bucket):
            try:
                super().dump_bytecode(bucket)
            except OSError:
                pass

    key = hashlib.sha256(repr((jinja2.__version__, sorted(_OPTIONS.items()))).encode()).hexdigest()[:12]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    directory = os.path.join(base, "srtctl", f"jinja2-{key}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # compiled templates are code this process runs: only from directories no one else can write
        for d in (os.path.dirname(directory), directory):
            st = os.stat(d)
            if st.st_uid != os.getuid() or st.st_mode & 0o022:
                return None
    except OSError:
        return None
    return QuietCache(directory)


@lru_cache(maxsize=1)
def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
        bytecode_cache=_bytecode_cache(jinja2), **_OPTIONS,
    )
    env.filters["q"] = _q
    env.filters["qjoin"] = _qjoin
    env.filters["yaml_str"] = _yaml_str
    env.filters["yaml_bool"] = _yaml_bool
    env.filters["sbatch_q"] = sbatch_quote
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
