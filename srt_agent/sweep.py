"""Sweeps in the job file and `--set/--unset` overrides: dotted paths into the job file, checked
against the job model (did-you-mean), expanded into members (grid x zip), each validated like
any job file. Pure: no files written here.

    sweep:
      mode: jobs | allocation
      grid: {PATH: [v1, v2], ...}     # Cartesian product
      zip:  {PATH: [a1, a2], ...}     # equal lengths, pairwise; members = grid x zip
"""

from __future__ import annotations

import copy
import itertools
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from .cluster_config import ClusterConfig, Strict
from .errors import ConfigError, ConfigErrors
from .job_config import JobConfig
from .resolved import ResolvedJob, resolve_job
from .secrets import is_secret_name
from .validation import _unwrap, did_you_mean, validate_document
from .yaml_source import YamlDocument


class SweepSection(Strict):
    mode: Literal["jobs", "allocation"] = Field("jobs", description="`jobs`: one sbatch per member; `allocation`: every member in one allocation")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values; the Cartesian product")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="dotted path -> values of equal length, taken pairwise")
    nodes: int | None = Field(None, ge=1, description="mode allocation: nodes of the allocation (default: the largest member's)")


@dataclass
class Member:
    name: str
    values: dict[str, Any]  # dotted path -> value
    data: dict[str, Any]  # the member's job file (no `sweep`)
    resolved: ResolvedJob | None = None
    errors: list[ConfigError] = field(default_factory=list)

    def text(self, sweep_file: str) -> str:
        head = f"# member {self.name} of the sweep in {sweep_file}: " + ", ".join(
            f"{k}={v!r}" for k, v in self.values.items()) + "\n"
        return head + yaml.safe_dump(self.data, sort_keys=False)


@dataclass
class Sweep:
    mode: str
    keys: list[str]
    members: list[Member]
    nodes: int | None = None  # mode allocation: the allocation's size as given in the file


# ---- dotted paths --------------------------------------------------------------------------

def split_path(path: str) -> list[str]:
    return [p for p in str(path).strip().split(".")]


def check_path(path: str, *, file: str | None, line: int | None, key: str) -> list[str]:
    """The path's segments if it names a key of the job file; else a ConfigError with did-you-mean.
    Below a free-form mapping (sglang_config.decode, *_environment) one more segment is allowed."""
    parts = split_path(path)
    if not parts or any(not p for p in parts):
        raise ConfigError(f"'{path}' is not a dotted path like resources.decode_workers", file=file, line=line, key=key)
    current: Any = JobConfig
    for i, part in enumerate(parts):
        model = next((c for c in _unwrap(current) if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is not None:
            if part not in model.model_fields:
                where = ".".join(parts[:i]) or "the top level"
                guess = did_you_mean(part, model.model_fields)
                allowed = ", ".join(model.model_fields)
                raise ConfigError(
                    f"'{path}' is not a key of the job file: no '{part}' in {where}", file=file, line=line, key=key,
                    hint=f"did you mean '{'.'.join(parts[:i] + [guess])}'?" if guess else f"keys in {where}: {allowed}")
            current = model.model_fields[part].annotation
            continue
        origin = next((typing.get_origin(c) for c in _unwrap(current) if typing.get_origin(c) is dict), None)
        if origin is dict and i == len(parts) - 1:
            return parts
        raise ConfigError(f"'{path}' goes below a plain value at '{'.'.join(parts[:i])}'", file=file, line=line,
                          key=key, hint=f"use '{'.'.join(parts[:i])}'")
    return parts


def set_path(data: dict, parts: list[str], value: Any) -> None:
    node = data
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = value


def unset_path(data: dict, parts: list[str]) -> bool:
    node = data
    for p in parts[:-1]:
        node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return False
    return node.pop(parts[-1], _MISSING) is not _MISSING


_MISSING = object()


# ---- --set / --unset -----------------------------------------------------------------------

def apply_overrides(data: dict, sets: list[str], unsets: list[str]) -> dict:
    """The job data with `--unset PATH` and `--set PATH=VALUE` (YAML value) applied, in that order.
    `sweep` and its keys as a whole (`sweep.mode`, `sweep.grid`, ...) can be set or unset too."""
    data = copy.deepcopy(data)
    errors: list[ConfigError] = []
    for path in unsets:
        try:
            parts = _override_path(path, "--unset")
            if not unset_path(data, parts):
                errors.append(ConfigError("not set in the job file", file="--unset", key=path,
                                          hint="only keys present in the file can be unset"))
        except ConfigError as exc:
            errors.append(exc)
    for item in sets:
        path, sep, raw = item.partition("=")
        if not sep:
            errors.append(ConfigError(f"'{item}' is not PATH=VALUE", file="--set",
                                      hint="e.g. --set resources.decode_workers=2"))
            continue
        try:
            parts = _override_path(path.strip(), "--set")
            try:
                value = yaml.safe_load(raw) if raw.strip() else ""
            except yaml.YAMLError as exc:
                problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
                raise ConfigError(f"the value {raw!r} is not valid YAML: {problem}", file="--set", key=path,
                                  hint="quote the whole option, e.g. --set 'benchmark.concurrencies=[4, 16]'") from None
            set_path(data, parts, value)
        except ConfigError as exc:
            errors.append(exc)
    if errors:
        raise ConfigErrors(errors)
    return data


def redacted_overrides(sets: list[str]) -> list[str]:
    """--set items as they may be written down: values of secret environment names as ***."""
    out = []
    for item in sets:
        path, sep, _ = item.partition("=")
        parts = split_path(path.strip())
        secret = len(parts) >= 2 and parts[-2].endswith("_environment") and is_secret_name(parts[-1])
        out.append(f"{path}{sep}***" if secret and sep else item)
    return out


def _override_path(path: str, flag: str) -> list[str]:
    if path == "sweep" or path in {f"sweep.{k}" for k in SweepSection.model_fields}:
        return split_path(path)  # the sweep section, or one of its keys as a whole
    if path.startswith("sweep."):
        raise ConfigError(f"'{path}' is not a key of the sweep section", file=flag, key=path,
                          hint="set a whole key: sweep.mode, sweep.nodes, sweep.grid={PATH: [...]}, sweep.zip=...")
    return check_path(path, file=flag, line=None, key=path)


# ---- expansion -----------------------------------------------------------------------------

def _abbrev(segment: str) -> str:
    words = [w for w in re.split(r"[-_]+", segment) if w]
    if len(words) > 1:
        return "".join(w[0] for w in words)
    return segment[:6]


def short_keys(paths: list[str]) -> dict[str, str]:
    """Readable, distinct labels: the last segment abbreviated (mem-fraction-static -> mfs),
    lengthened with its parents' initials where two would collide."""
    out = {p: _abbrev(split_path(p)[-1]) for p in paths}
    depth = 1
    while len(set(out.values())) < len(out) and depth < 8:
        depth += 1
        for p in paths:
            if list(out.values()).count(out[p]) > 1:
                parts = split_path(p)
                out[p] = "".join(_abbrev(s)[0] for s in parts[-depth:-1]) + _abbrev(parts[-1])
    return out


def _value_label(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).rstrip("-") or "x"


def member_name(base: str, values: dict[str, Any], labels: dict[str, str]) -> str:
    return base + "_" + "_".join(f"{labels[k]}{_value_label(v)}" for k, v in values.items())


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def _check_names(values: list, file: str, line: int | None, key: str) -> list[ConfigError]:
    """zip.name: one member name each, unique, usable as a directory and SLURM job name."""
    bad = [v for v in values if not isinstance(v, str) or not _NAME.fullmatch(v) or len(v) > 200]
    if bad:
        return [ConfigError(f"member names must be letters, digits and . _ + - (got {bad[0]!r})", file=file, line=line,
                            key=key, hint="e.g. 8k1k-4p1d")]
    dup = sorted({v for v in values if values.count(v) > 1})
    if dup:
        return [ConfigError(f"member names must be unique ({dup[0]!r} is given {values.count(dup[0])} times)",
                            file=file, line=line, key=key, hint="give each member its own name")]
    return []


def parse_sweep(doc: YamlDocument, data: dict) -> SweepSection:
    raw = data.get("sweep")
    sub = YamlDocument(path=doc.path, data=raw,
                       lines={k[1:]: v for k, v in doc.lines.items() if k[:1] == ("sweep",)})
    if raw is None or not isinstance(raw, dict):
        raise ConfigError("sweep must be a mapping with grid and/or zip", file=doc.path,
                          line=doc.line_of(("sweep",)), key="sweep", hint="see docs/sweeps.md")
    try:
        section = validate_document(SweepSection, sub)
    except ConfigErrors as exc:
        for e in exc.errors:
            e.key = f"sweep.{e.key}"
        raise ConfigErrors([ConfigError(e.message, file=e.file, line=e.line, key=e.key, hint=e.hint)
                            for e in exc.errors]) from None
    errors: list[ConfigError] = []
    if not section.grid and not section.zip:
        errors.append(ConfigError("a sweep needs grid or zip with at least one path", file=doc.path,
                                  line=doc.line_of(("sweep",)), key="sweep",
                                  hint="add e.g. grid: {resources.decode_workers: [1, 2]}"))
    for kind in ("grid", "zip"):
        for path, values in getattr(section, kind).items():
            line = doc.line_of(("sweep", kind, path))
            key = f"sweep.{kind}.{path}"
            if split_path(path)[0] == "name":
                if kind == "grid" or path != "name":
                    where = "in grid" if kind == "grid" else f"through zip path {path!r}"
                    errors.append(ConfigError(f"a sweep cannot vary the job name {where}: members are named by zip.name", file=doc.path,
                                              line=line, key=key, hint="give `zip: {name: [...]}` one name per "
                                              "member, or leave it out (members are then named from their values)"))
                else:
                    errors.extend(_check_names(values, doc.path, line, key))
                continue
            try:
                parts = check_path(path, file=doc.path, line=line, key=key)
                if parts[-2:-1] and parts[-2].endswith("_environment") and is_secret_name(parts[-1]):
                    errors.append(ConfigError(
                        "a secret cannot be swept (its values would show in member names and sweep.json)",
                        file=doc.path, line=line, key=key, hint="set it once in the job file; sweep other values"))
            except ConfigError as exc:
                errors.append(exc)
            if not values:
                errors.append(ConfigError("empty list of values", file=doc.path, line=line, key=key,
                                          hint="give at least one value, or remove the path"))
    both = set(section.grid) & set(section.zip)
    for path in both:
        errors.append(ConfigError("the path is in both grid and zip", file=doc.path,
                                  line=doc.line_of(("sweep", "zip", path)), key=f"sweep.zip.{path}",
                                  hint="keep it in one of them"))
    lengths = {p: len(v) for p, v in section.zip.items()}
    if len(set(lengths.values())) > 1:
        first = next(iter(section.zip))
        errors.append(ConfigError(
            "zip lists must have equal lengths: " + ", ".join(f"{p} has {n}" for p, n in lengths.items()),
            file=doc.path, line=doc.line_of(("sweep", "zip")), key="sweep.zip",
            hint=f"give every zip path {lengths[first]} values, or move paths to grid"))
    if errors:
        raise ConfigErrors(errors)
    return section


def expand(doc: YamlDocument, data: dict, cluster: ClusterConfig) -> Sweep:
    """Every member, each validated like a job file; raises one error listing every invalid member."""
    section = parse_sweep(doc, data)
    base = {k: v for k, v in data.items() if k != "sweep"}
    grid_keys = list(section.grid)
    zip_keys = list(section.zip)
    keys = grid_keys + zip_keys
    labels = short_keys(keys)
    zipped = list(zip(*section.zip.values())) if zip_keys else [()]
    combos = [dict(zip(keys, g + z)) for g in itertools.product(*section.grid.values()) for z in zipped]
    base_name = str(base.get("name") or "job")
    members: list[Member] = []
    seen: dict[str, int] = {}
    for values in combos:
        if "name" in values:  # zip.name: the members' own names (an srt-slurm override file's variants)
            name = str(values["name"])
        else:
            name = member_name(base_name, values, labels)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        member_data = copy.deepcopy(base)
        for path, value in values.items():
            if value is None:  # null: the key is left out of this member (an override file's `null`)
                unset_path(member_data, split_path(path))
            else:
                set_path(member_data, split_path(path), copy.deepcopy(value))
        member_data["name"] = name
        member = Member(name=name, values=values, data=member_data)
        lines = dict(doc.lines)
        for path in values:  # errors about a swept value point at its line in the sweep
            kind = "grid" if path in section.grid else "zip"
            lines[tuple(split_path(path))] = doc.line_of(("sweep", kind, path)) or 1
        mdoc = YamlDocument(path=doc.path, data=member_data, lines=lines)
        try:
            member.resolved = resolve_job(mdoc, cluster)
        except ConfigErrors as exc:
            member.errors = list(exc.errors)
        except ConfigError as exc:
            member.errors = [exc]
        members.append(member)
    bad = [m for m in members if m.errors]
    if bad:
        raise ConfigError(invalid_members_text(bad, len(members)), file=doc.path, key="sweep",
                          hint="fix the values or the base job; nothing was written or submitted")
    return Sweep(mode=section.mode, keys=keys, members=members, nodes=section.nodes)


def invalid_members_text(bad: list[Member], total: int) -> str:
    lines = [f"{len(bad)} of {total} sweep members are invalid:"]
    for m in bad:
        lines.append(f"  member {m.name} (" + ", ".join(f"{k}={v!r}" for k, v in m.values.items()) + "):")
        for e in m.errors:
            lines.extend("    " + line for line in e.render().splitlines())
    return "\n".join(lines)


def check_allocation(sweep: Sweep, doc: YamlDocument) -> int:
    """Nodes of the one allocation (the largest member); members that cannot share it are errors."""
    size = max(m.resolved.total_nodes for m in sweep.members)  # type: ignore[union-attr]
    limit = sweep.nodes or size
    errors = []
    for m in sweep.members:
        r = m.resolved
        assert r is not None
        if r.total_nodes > limit:
            errors.append(f"member {m.name} needs {r.total_nodes} nodes, the allocation has {limit} (sweep.nodes)")
        for attr in ("gpus_per_node", "account", "partition", "time_limit"):
            first = getattr(sweep.members[0].resolved, attr)
            if getattr(r, attr) != first:
                errors.append(f"member {m.name} has {attr} {getattr(r, attr)!r}, the allocation {first!r}")
    if errors:
        raise ConfigError("members cannot share one allocation:\n  " + "\n  ".join(errors), file=doc.path,
                          line=doc.line_of(("sweep", "mode")), key="sweep.mode",
                          hint="sweep only values that keep SLURM settings equal, or use mode: jobs")
    return limit
