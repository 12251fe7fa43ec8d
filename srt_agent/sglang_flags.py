"""sglang_config mapping -> command-line flags (kebab-case; true -> bare flag; lists -> repeated values)."""

from __future__ import annotations

import json
from typing import Any


def sglang_flags(config: dict[str, Any], *, skip: tuple[str, ...] = ()) -> list[str]:
    out: list[str] = []
    for key, value in config.items():
        name = str(key).replace("_", "-").lstrip("-")
        if name in skip:
            continue
        flag = f"--{name}"
        if value is None or value is False:
            continue
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            out.append(flag)
            out.extend(_scalar(v) for v in value)
        else:
            out.extend([flag, _scalar(value)])
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
