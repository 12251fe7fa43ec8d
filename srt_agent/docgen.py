"""The key tables of docs/configuration.md, generated from the config models' `description=`s.

    python -m srt_agent.docgen           # rewrite the generated parts of docs/configuration.md
    python -m srt_agent.docgen --check   # exit 1 when they are out of date (tests/test_docs.py checks it)

The document keeps its prose; only the text between `<!-- BEGIN GENERATED: cluster -->` (or `job`)
and `<!-- END GENERATED: cluster -->` is produced here: one table per section, one row per key,
with its type, default and meaning.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from .cluster_config import ClusterConfig
from .incumbent.mapping import MIGRATING_DOC, regenerate_doc
from .job_config import JobConfig

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
ROOTS: dict[str, type[BaseModel]] = {"cluster": ClusterConfig, "job": JobConfig}
_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean", typing.Any: "any"}


def _args(annotation: Any) -> tuple[Any, ...]:
    return typing.get_args(annotation)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a nested section (`cloud: CloudConfig | None` counts), else None."""
    for cand in (_args(annotation) if _is_union(annotation) else (annotation,)):
        if isinstance(cand, type) and issubclass(cand, BaseModel):
            return cand
    return None


def type_name(annotation: Any) -> str:
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if section_model(annotation) is not None:
        return "section"
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = [f"`{a}`" for a in _args(annotation)]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if _is_union(annotation):
        parts = [type_name(a) for a in _args(annotation) if a is not type(None)]
        return " or ".join(parts)
    if origin is list:
        return f"list of {type_name(_args(annotation)[0])}"
    if origin is dict:
        key, value = _args(annotation)
        return f"map of {type_name(key)} to {type_name(value)}"
    return getattr(annotation, "__name__", str(annotation))


def constraint_text(field: Any) -> str:
    """Bounds declared on the field (ge=1, le=64, ...), as ` (1..64)` or ` (>= 1)`."""
    low = high = None
    for m in field.metadata:
        for attr, kind in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(m, attr, None)
            if value is not None:
                if kind.startswith(">"):
                    low = (kind, value)
                else:
                    high = (kind, value)
    if low and high and low[0] == ">=" and high[0] == "<=":
        return f" ({low[1]}..{high[1]})"
    return "".join(f" ({b[0]} {b[1]})" for b in (low, high) if b)


def default_text(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return "(section)"
    else:
        value = field.default
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dict):
        return "`{}`" if not value else f"`{value}`"
    if isinstance(value, list):
        return "`[]`" if not value else f"`{value}`"
    return f"`{value}`"


def walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str, type[BaseModel], Any]]:
    """(section path, key path, owning model, field) for every key, depth first, sections after keys."""
    nested = []
    for name, field in model.model_fields.items():
        yield prefix, f"{prefix}{name}", model, field
        sub = section_model(field.annotation)
        if sub is not None:
            nested.append((f"{prefix}{name}.", sub))
    for sub_prefix, sub in nested:
        yield from walk(sub, sub_prefix)


def keys(kind: str) -> list[str]:
    """Every documented key path of a file kind ("cluster" or "job")."""
    return [key for _, key, _, _ in walk(ROOTS[kind])]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def tables(kind: str) -> str:
    """Markdown: one table per section of the file kind."""
    out: list[str] = []
    current = None
    for section, key, model, field in walk(ROOTS[kind]):
        if section != current:
            current = section
            out += ["", f"#### `{section.rstrip('.')}`" if section else "#### top level", ""]
            if section and model.__doc__:
                out += [_cell(model.__doc__.strip().splitlines()[0]), ""]
            out += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        kind_text = type_name(field.annotation) + constraint_text(field)
        out.append(f"| `{key}` | {_cell(kind_text)} | {_cell(default_text(field))} | {_cell(field.description or '')} |")
    return "\n".join(out).lstrip("\n") + "\n"


def begin(kind: str) -> str:
    return f"<!-- BEGIN GENERATED: {kind} (python -m srt_agent.docgen) -->"


def end(kind: str) -> str:
    return f"<!-- END GENERATED: {kind} -->"


def regenerate(text: str) -> str:
    """`text` with every generated block replaced by the current tables."""
    for kind in ROOTS:
        b, e = begin(kind), end(kind)
        start, stop = text.find(b), text.find(e)
        if start < 0 or stop < start:
            raise ValueError(f"docs/configuration.md lacks the markers {b!r} ... {e!r}")
        text = text[:start + len(b)] + "\n\n" + tables(kind) + "\n" + text[stop:]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srt_agent.docgen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the file is out of date")
    parser.add_argument("--file", type=Path, default=DOC, help="the document (default: docs/configuration.md)")
    args = parser.parse_args(argv)
    text = args.file.read_text()
    new = regenerate(text)
    if args.check:
        if new != text:
            print(f"{args.file} is out of date: run python -m srt_agent.docgen", file=sys.stderr)
            return 1
        return 0
    if new != text:
        args.file.write_text(new)
        print(f"updated {args.file}")
    if args.file == DOC:  # docs/migrating.md: the srt-slurm (v1) key mapping
        text = MIGRATING_DOC.read_text()
        new = regenerate_doc(text)
        if args.check and new != text:
            print(f"{MIGRATING_DOC} is out of date: run python -m srt_agent.docgen", file=sys.stderr)
            return 1
        if not args.check and new != text:
            MIGRATING_DOC.write_text(new)
            print(f"updated {MIGRATING_DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
