"""srt-slurm (v1) override files (`base:` + `override_<name>:` / `zip_override_<name>:`) as one
job file with a `sweep.zip` (docs/sweeps.md), one member per variant, in the file's order.

The incumbent's rules: every `override_<name>` is deep-merged into `base` (mappings merged,
lists and scalars replaced, `null` deletes the key) and is one job; a `zip_override_<name>`
gives N jobs, its list leaves taken pairwise (a one-element list or a scalar is the same for
every job, a list of lists gives each job one list); `base` itself is not run. Here each variant
is merged and converted like a single recipe; the keys on which the converted variants differ
from the converted base become the zip's paths.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ..errors import ConfigError, ConfigErrors
from ..yaml_source import Loc, YamlDocument
from .detect import is_override_file  # noqa: F401 (convert.py imports it from here)

OVERRIDE, ZIP = "override_", "zip_override_"
_GONE = object()


def needs_base(c, e, path, value) -> None:
    """The converter's handler for a variant in a file without base."""
    c.refuse(path, f"'{path[0]}' is a variant of an override file, which needs a base section",
             hint="put the shared recipe under base: (docs/migrating.md, override files)")


def deep_merge(base: Any, over: Any) -> Any:
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = deep_merge(out.get(k), v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
                else copy.deepcopy(v)
    return out


def _zip_length(node: Any, lengths: dict[int, Loc], loc: Loc) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _zip_length(v, lengths, (*loc, str(k)))
    elif isinstance(node, list) and len(node) != 1:
        lengths.setdefault(len(node), loc)


def _zip_slice(node: Any, i: int) -> Any:
    if isinstance(node, dict):
        return {k: _zip_slice(v, i) for k, v in node.items()}
    if isinstance(node, list):
        return copy.deepcopy(node[0] if len(node) == 1 else node[i])
    return copy.deepcopy(node)


def variants(doc: YamlDocument) -> list[tuple[str, Loc, dict]]:
    """(label, recipe section, override mapping) per variant, in the file's order."""
    out: list[tuple[str, Loc, dict]] = []
    errors: list[ConfigError] = []
    for key, value in doc.data.items():
        key = str(key)
        if key == "base":
            continue
        if not key.startswith((OVERRIDE, ZIP)) or not isinstance(value, dict):
            errors.append(ConfigError(
                f"'{key}' in an override file: every key is base, override_<name> or zip_override_<name> "
                "(each a mapping)", file=doc.path, line=doc.line_of((key,)), key=key,
                hint="move it under base, or make it a variant"))
            continue
        if key.startswith(OVERRIDE):
            out.append((key[len(OVERRIDE):], (key,), value))
            continue
        lengths: dict[int, Loc] = {}
        _zip_length(value, lengths, (key,))
        if len(lengths) > 1:
            errors.append(ConfigError(
                "zip_override lists must have one length (a one-element list is used for every job): "
                + ", ".join(f"{'.'.join(loc[1:])} has {n}" for n, loc in lengths.items()),
                file=doc.path, line=doc.line_of((key,)), key=key, hint="give every list the same length"))
            continue
        n = next(iter(lengths), 1)
        for i in range(n):
            out.append((f"{key[len(ZIP):]}_{i}", (key,), _zip_slice(value, i)))
    if not out and not errors:
        errors.append(ConfigError("an override file needs at least one override_<name> or zip_override_<name>",
                                  file=doc.path, line=doc.line_of(("base",)), key="base",
                                  hint="add a variant, or make base's contents the whole recipe"))
    if errors:
        raise ConfigErrors(errors)
    return out


def _lines(doc: YamlDocument, section: Loc | None) -> dict[Loc, int]:
    """The recipe's lines for a merged variant: base's keys, then the variant's own on top."""
    lines = {k[1:]: v for k, v in doc.lines.items() if k[:1] == ("base",) and len(k) > 1}
    if section is not None:
        lines.update({k[len(section):]: v for k, v in doc.lines.items()
                      if k[:len(section)] == section and len(k) > len(section)})
    return lines


def _flat(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(node, dict) and node:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in node.items():
            out.update(_flat(v, (*prefix, str(k))))
        return out
    return {prefix: node}


def member_names(base_name: Any, convs: list) -> list[str]:
    """Each variant's sweep member name: the name it sets itself (a zip_override's `name` list), else
    the variant's own name (override_<name> -> <name>, zip_override_<name> -> <name>_<i>), made
    valid (letters, digits, . _ + -) and unique (-2, -3, ...)."""
    out: list[str] = []
    for label, _section, conv in convs:
        own = conv.data.get("name")
        name = str(own) if own is not None and own != base_name else label
        name = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.") or "variant"
        unique, n = name, 1
        while unique in out:
            n += 1
            unique = f"{name}-{n}"
        out.append(unique)
    return out


def convert_override_file(doc: YamlDocument, convert_one):
    """The override file as one Conversion with a sweep.zip; `convert_one(YamlDocument)` converts a recipe."""
    if not isinstance(doc.data.get("base"), dict):
        raise ConfigError("base must be a mapping: the recipe every variant starts from", file=doc.path,
                          line=doc.line_of(("base",)), key="base")
    found = variants(doc)
    base = convert_one(YamlDocument(path=doc.path, data=doc.data["base"], lines=_lines(doc, None)))
    convs, errors = [], []
    for label, section, over in found:
        merged = deep_merge(doc.data["base"], over)
        try:
            convs.append((label, section, convert_one(YamlDocument(path=doc.path, data=merged,
                                                                   lines=_lines(doc, section)))))
        except ConfigErrors as exc:
            errors.extend(exc.errors)
        except ConfigError as exc:
            errors.append(exc)
    if errors:  # variants that share a refused key report it once
        raise ConfigErrors(list({str(e): e for e in errors}.values()))
    flat_base = _flat(base.data)
    flats = [_flat(c.data) for _, _, c in convs]
    paths: list[tuple[str, ...]] = []
    for f in [flat_base, *flats]:
        for p in f:
            if p not in paths and p[:1] != ("name",) and any(g.get(p, _GONE) != flat_base.get(p, _GONE) for g in flats):
                paths.append(p)
    for p in paths:
        for (label, section, _), f in zip(convs, flats):
            problem = None  # a key a variant lacks is null in the zip: left out of that member
            if p in f and any("." in part for part in p):
                problem = f"the key '{p[-1]}' has a '.', which a sweep path cannot hold"
            elif p not in f and any(q[:len(p)] == p or p[:len(q)] == q for q in f):
                problem = f"'{'.'.join(p)}' is restructured by this variant (a mapping in one, a value in another)"
            if problem:
                raise ConfigError(f"override file variant {section[0]} ({label}): {problem}", file=doc.path,
                                  line=doc.line_of(section), key=section[0],
                                  hint="give base the value the other variants should use, or write one recipe "
                                       "per variant and convert each")
    names = member_names(base.data.get("name"), convs)
    data = dict(base.data)
    notes = list(base.notes)
    for _, _, c in convs:
        notes.extend(n for n in c.notes if n not in notes)
    labels = [f"{i + 1}: {section[0]}{'' if section[0].endswith(label) else f' ({label})'}"
              for i, (label, section, _) in enumerate(convs)]
    members = "override file: members of sweep.zip, in order, are " + ", ".join(
        f"{label} = {name}" for label, name in zip(labels, names))
    notes.append(members + " (base itself is not a member, as in srt-slurm)")
    if len(convs) == 1:
        data = dict(convs[0][2].data)
    else:
        data["sweep"] = {"zip": {"name": names, **{".".join(p): [f.get(p) for f in flats] for p in paths}}}
    lines: dict[Loc, int] = dict(base.lines)
    for p in paths:
        line = next((c.lines.get(p) for _, _, c in convs if c.lines.get(p) and c.lines.get(p) != base.lines.get(p)),
                    None)
        lines[("sweep", "zip", ".".join(p))] = line or doc.line_of(found[0][1]) or 1
    lines[("sweep", "zip", "name")] = doc.line_of(found[0][1]) or 1
    lines[("sweep",)] = doc.line_of(found[0][1]) or 1
    lines[("sweep", "zip")] = lines[("sweep",)]
    brief = dict(base.brief)
    return type(base)(source=doc.path, data=data, lines=lines, notes=notes, brief=brief, members=members)
