"""Load YAML while remembering the line of every key, so errors can point at file:line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

Loc = tuple[Any, ...]


@dataclass
class YamlDocument:
    """Parsed YAML data plus a map from key path (("backend", "sglang_config")) to 1-based line."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of `loc`, or of its nearest ancestor that appears in the file."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], path: str) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ConfigError(
                    f"duplicate key '{key}' (first defined on line {seen[key]})",
                    file=path, line=line, key=".".join(map(str, loc + (key,))),
                    hint="remove one of the two definitions",
                )
            seen[key] = line
            lines[loc + (key,)] = line
            _walk(value_node, loc + (key,), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = item.start_mark.line + 1
            _walk(item, loc + (i,), lines, path)


# libyaml's parser when PyYAML has it (several times faster than the pure-Python one: CLI start-up)
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _lines_and_data(text: str, loader_cls: type, path: str) -> tuple[dict[Loc, int], Any]:
    """One parse: each key's line (from the node tree) and the data built from it, as
    yaml.safe_load builds it. The lines are taken first: building the data flattens merge keys
    (`<<: *anchor`) in the node tree itself."""
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        if node is None:
            return lines, None
        _walk(node, (), lines, path)
        return lines, loader.construct_document(node)
    finally:
        loader.dispose()


def parse_yaml(text: str, path: str) -> YamlDocument:
    try:
        try:
            lines, data = _lines_and_data(text, _FAST_LOADER, path)
        except yaml.YAMLError:  # errors are worded by the pure-Python parser, as before
            lines, data = _lines_and_data(text, yaml.SafeLoader, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"invalid YAML: {problem}", file=path, line=line,
                          hint="check indentation and quoting near this line") from None
    return YamlDocument(path=path, data=data, lines=lines)


def load_yaml(path: str | Path) -> YamlDocument:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError("file not found", file=str(p), hint="check the path passed with -f") from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=str(p)) from None
    return parse_yaml(text, str(p))
