"""Jinja2 rendering of the files in templates/, with shell-quoting filters."""

from __future__ import annotations

import shlex
from functools import lru_cache
from pathlib import Path

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _qjoin(values: list) -> str:
    return " ".join(shlex.quote(str(v)) for v in values)


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
    return env


def render(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)
