"""`backend.kv_events_config`: SGLang's `--kv-events-config` on the workers, with ports srtctl allocates.

SGLang publishes KV-cache events (block stored / removed) on a ZMQ endpoint; Dynamo's SGLang worker
forwards them to its KV-aware router. The setting is srt-slurm's: `true` turns them on for prefill
and decode workers, or per role `{prefill: true, decode: {topic: x}, aggregated: true}`; each
enabled role gets `{"publisher": "zmq", "topic": "kv-events", <its own keys>, "endpoint":
"tcp://*:PORT"}`. The port is per worker node, from the job's block (ports.py); SGLang adds the
data-parallel rank to it, so each node reserves one port per data-parallel rank.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

DEFAULTS = {"publisher": "zmq", "topic": "kv-events"}
SECTIONS = {"prefill": "prefill", "decode": "decode", "agg": "aggregated"}
FLAG = "kv-events-config"


def check(value: Any, engine: str | None) -> Any:
    """The job-file value: true/false, or a mapping of prefill/decode/aggregated to true/false/settings."""
    if value is None or value is False:
        return None
    if engine == "dynamo-mocker":
        raise ValueError("kv_events_config is SGLang's (--kv-events-config); the Dynamo mocker has no such flag")
    if value is True:
        return True
    if not isinstance(value, dict):
        raise ValueError("kv_events_config is true, or a mapping of prefill/decode/aggregated to true or settings")
    out: dict[str, Any] = {}
    for role, cfg in value.items():
        if role not in SECTIONS.values():
            raise ValueError(f"'{role}' is not a role of kv_events_config (prefill, decode, aggregated)")
        if cfg is None or cfg is False:
            continue
        if isinstance(cfg, dict):
            if "endpoint" in cfg:
                raise ValueError(f"kv_events_config.{role}.endpoint is set by srtctl (a per-job port on each node)")
            bad = [k for k, v in cfg.items() if not isinstance(v, (str, int, float, bool))]
            if bad:
                raise ValueError(f"kv_events_config.{role}.{bad[0]} must be a string, number or boolean")
        elif cfg is not True:
            raise ValueError(f"kv_events_config.{role} must be true, false or a mapping of settings")
        out[role] = cfg
    return out or None


def role_config(setting: Any, role: str) -> dict[str, Any] | None:
    if not setting:
        return None
    if setting is True:  # srt-slurm: prefill and decode workers only
        return dict(DEFAULTS) if role in ("prefill", "decode") else None
    cfg = setting.get(SECTIONS[role])
    if cfg is None or cfg is False:
        return None
    return {**DEFAULTS, **(cfg if isinstance(cfg, dict) else {})}


def kv_events_args(setting: Any, role: str, take_port: Callable[[], int], dp: int) -> list[str]:
    """The flag of one worker node (its ports taken from `take_port`), or [] when off for `role`."""
    cfg = role_config(setting, role)
    if cfg is None:
        return []
    ports = [take_port() for _ in range(max(1, dp))]
    return [f"--{FLAG}", json.dumps({**cfg, "endpoint": f"tcp://*:{ports[0]}"}, separators=(",", ":"))]
