"""The run directory, for both halves: the CLI (`launcher/`) reads it, the agent (`agent/`) writes it.

Where runs and their inputs live (srtctl_root, configs/, logs/), the tail of a log, the time-to-ready
line of status.json, and the one write to status.json from outside the agent (`record_agent_died`).
The layout of a run directory is described in docs/architecture.md; status.json's schema in
srt_agent/agent/status.py (its one writer) and docs/monitoring.md. pids.json: srt_agent/rundir_pids.py.
"""

from __future__ import annotations

import json
import os
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import append_jsonl, write_json_atomic

if TYPE_CHECKING:  # annotations only: reading a run needs no pydantic models
    from .cluster_config import ClusterConfig

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
TERMINAL_STATES = ("succeeded", "failed", "cancelled")
LOG_TAIL_LINES = 50
# the steps of status.json's time_to_ready.steps_s, in the order the agent runs them
READY_STEPS = ("node_probe", "preflight", "infra", "workers", "endpoint", "registration", "smoke_request")


# ---------------------------------------------------------------------------- where things live


def srtctl_root(cluster: ClusterConfig) -> Path:
    """srtctl_root from the cluster file, else $SRTCTL_ROOT, else the checkout srtctl runs from; an installed
    wheel has no checkout, so there it is the current directory (like logs/)."""
    default = PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return Path(cluster.srtctl_root or os.environ.get("SRTCTL_ROOT") or default).resolve()


def configs_dir(cluster: ClusterConfig) -> Path:
    return srtctl_root(cluster) / "configs"


def logs_dir(cluster: ClusterConfig) -> Path:
    return Path(cluster.logs_dir).resolve() if cluster.logs_dir else (Path.cwd() / "logs").resolve()


# ---------------------------------------------------------------------------- reading


def now() -> str:
    """The timestamps of status.json and events.jsonl (UTC, milliseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def read_json(path: Path) -> Any:
    """The parsed file, or None if it is missing or not (yet) valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (read from its last 256 KiB); [] if it is not there."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode(errors="replace")
    except FileNotFoundError:
        return []
    return list(deque(data.splitlines(), maxlen=lines))


def ready_summary(ttr: dict | None) -> str | None:
    """`42.1 s to ready (queue 3.0, node_probe 0.4, ... )` of status.json's time_to_ready, for
    srtctl status and the report."""
    if not ttr:
        return None
    total = ttr.get("submit_to_ready_s") or ttr.get("agent_to_ready_s")
    parts = []
    if ttr.get("queue_wait_s") is not None:
        parts.append(f"queue {ttr['queue_wait_s']:.1f}")
    steps = ttr.get("steps_s") or {}
    parts += [f"{k.replace('_', ' ')} {steps[k]:.1f}" for k in READY_STEPS if k in steps]
    head = f"{total:.1f} s to ready" if total is not None else "not ready"
    return f"{head} ({', '.join(parts)})" if parts else head


# ---------------------------------------------------------------------------- the one outside write


def record_agent_died(run_dir: str | Path, reason: str) -> dict[str, Any] | None:
    """Mark a run whose agent is gone (found by srtctl) as failed with cause "agent died: ...".

    The agent itself can no longer write, so this is the one write to status.json from outside
    the agent; it re-reads the file first and leaves a final state alone. Returns the new status."""
    try:
        current = json.loads((Path(run_dir) / "status.json").read_text())
    except FileNotFoundError:
        return None
    if current.get("state") in TERMINAL_STATES:
        return current
    message = f"agent died: {reason}"
    current["state"] = "failed"
    current["failure"] = current.get("failure") or {"component": "agent", "node": current.get("agent_host"),
                                                    "exit_code": None, "message": message, "log_tail": []}
    current["message"] = message
    current["updated_at"] = now()
    write_json_atomic(Path(run_dir) / "status.json", current)
    append_jsonl(Path(run_dir) / "events.jsonl", {"ts": now(), "event": "failure", "component": "agent",
                                                  "message": message, "recorded_by": "srtctl"})
    return current
