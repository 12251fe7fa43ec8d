"""Synthesise a recipe in srt-slurm's (v1) format from an entry of tests/fixtures/incumbent_census.json.

The census records, for each of the incumbent's published SGLang recipes that was read, only its
structural facts: every key path with the kind of its value, the values that decide conversion
(node / worker / GPU counts, backend and frontend types, benchmark type and options, Dynamo
options, parallel sizes, disaggregation modes) and the NAMES of its sglang_config flags per mode.
Everything else is a placeholder token, filled in here with this project's own values:

    "<str>" "<int>" "<float>" "<list>" "<dict>"   a value of that kind
    "<env:N>"                                    a mapping of N environment variables
    "<alias>"                                    a model / container alias (the test cluster defines it)
    "$NAME" (model.path)                         read from the environment (render_environment sets it)

An override file's entry has `base` (keys + flags) and `variants` (name, keys, flags) instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

CENSUS = Path(__file__).resolve().parents[2] / "fixtures" / "incumbent_census.json"
MODEL_ALIAS, CONTAINER_ALIAS = "m", "c"
DIRECT_HOST = "direct-host"  # srt-slurm's no-container mode, not a container alias
SETUP_SCRIPT = "setup.sh"


def load() -> dict:
    return json.loads(CENSUS.read_text())


def container_aliases(census: dict) -> dict[str, str]:
    """The container aliases the recipes name (their cluster files define them; the test cluster does too)."""
    found = {CONTAINER_ALIAS}
    for e in census["recipes"]:
        for part in ([e] if "variants" not in e else [e["base"], *e["variants"]]):
            c = part.get("keys", {}).get("model.container")
            if isinstance(c, str) and not c.startswith("<") and "/" not in c and c != DIRECT_HOST:
                found.add(c)
    return {a: f"/containers/{a}.sqsh" for a in sorted(found)}


def render_environment(census: dict) -> dict[str, str]:
    """The variables recipes read when srt-slurm renders them (`model.path: $NAME`): their users
    export them where they run srtctl; here each names a placeholder model directory."""
    out = {}
    for e in census["recipes"]:
        for part in ([e] if "variants" not in e else [e["base"], *e["variants"]]):
            m = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", str(part.get("keys", {}).get("model.path", "")))
            if m:
                out[m.group(1)] = "/models/placeholder"
    return out


def placeholder(token: Any, key: str, *, flag: bool = False, index: int | None = None) -> Any:
    if isinstance(token, list):  # a zip_override list: each item filled in (member names made distinct)
        return [placeholder(t, key, flag=flag, index=i) for i, t in enumerate(token)]
    if isinstance(token, dict):
        return {k: placeholder(t, f"{key}.{k}", flag=flag) for k, t in token.items()}
    if not isinstance(token, str) or not token.startswith("<") or not token.endswith(">"):
        return token
    kind = token[1:-1]
    if kind.startswith("env:"):
        return {f"SRTCTL_CENSUS_VAR_{i}": str(i) for i in range(int(kind[4:]))}
    if kind == "alias":
        return MODEL_ALIAS if key == "model.path" else CONTAINER_ALIAS
    if kind == "str":
        if key == "setup_script":
            return SETUP_SCRIPT
        if key == "name":
            return "census-recipe" if index is None else f"census-member-{index}"
        if key == "slurm.time_limit":
            return "01:00:00"
        if key == "benchmark.trace_file":  # the recipes name it by its absolute path in the container, under
            return "/x/trace.jsonl"  # one of their mounts (the census's extra_mount is /data/x:/x)
        return "placeholder" if flag else "x"
    return {"int": 8 if flag else 2, "float": 0.5, "list": [1, 2], "dict": {"a": 1}}[kind]


def _set(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value


def recipe(part: dict) -> dict:
    """One recipe (or an override file's base / variant) with placeholders filled in."""
    data: dict[str, Any] = {}
    for key, token in part.get("keys", {}).items():
        _set(data, key, placeholder(token, key))
    for mode, flags in part.get("flags", {}).items():
        section = data.setdefault("backend", {}).setdefault("sglang_config", {}).setdefault(mode, {})
        for name, token in flags.items():
            section[name] = placeholder(token, f"backend.sglang_config.{mode}.{name}", flag=True)
    return data


def synthesise(entry: dict) -> dict:
    if "variants" not in entry:
        return recipe(entry)
    out = {"base": recipe(entry["base"])}
    for v in entry["variants"]:
        out[v["name"]] = recipe(v)
    return out


def expected_flags(entry: dict) -> dict[str, set[str]]:
    """Per mode, the flag names the worker command lines must carry (false means 'off': not passed)."""
    parts = [entry] if "variants" not in entry else [entry["base"], *entry["variants"]]
    out: dict[str, set[str]] = {}
    for part in parts:
        for mode, flags in part.get("flags", {}).items():
            out.setdefault(mode, set()).update(n.lstrip("-").replace("_", "-") for n, v in flags.items()
                                               if v is not False and v is not None)
    return out
