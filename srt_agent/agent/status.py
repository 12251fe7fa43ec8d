"""status.json (replaced atomically, versioned schema) and events.jsonl (append-only).

Schema (version 1), documented in docs/monitoring.md:
  schema_version, job_id, name, run_dir, executor, agent_pid, agent_host, state, phase, message,
  started_at, updated_at,
  endpoint, components[{name, kind, role, node, port, pid, step, state, health, started_at,
  first_log_at, ready_at, exited_at, exit_code, log, time_to_ready}], time_to_ready (time_to_ready.py), failure{component, node, exit_code, message, log_tail},
  benchmark{points_total, points_done, current, results[]}, profiles[], phases{name: state}
srtctl reads it (launcher/run_lookup.py); the one write from outside the agent, a run whose agent
died, is srt_agent/rundir.py's record_agent_died.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

from ..atomic import append_jsonl, write_json_atomic
from ..rundir import now
from .time_to_ready import component_times

__all__ = ["SCHEMA_VERSION", "STATES", "StatusWriter", "now"]

SCHEMA_VERSION = 1
STATES = ("starting", "running", "ready", "benchmarking", "profiling", "succeeded", "failed", "cancelled")


class StatusWriter:
    """The one writer of status.json and events.jsonl for a run."""

    def __init__(self, run_dir: Path, *, job_id: str, name: str, executor: str) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / "status.json"
        self.events_path = self.run_dir / "events.jsonl"
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "job_id": job_id, "name": name, "run_dir": str(self.run_dir),
            "executor": executor, "agent_pid": os.getpid(), "agent_host": socket.gethostname(),
            "state": "starting", "phase": "start", "started_at": now(), "updated_at": now(),
            "endpoint": None, "components": {}, "failure": None, "phases": {},
            "benchmark": {"points_total": 0, "points_done": 0, "current": None, "results": []},
            "profiles": [], "message": None,
        }

    def _flush(self) -> None:
        self.data["updated_at"] = now()
        out = dict(self.data)
        out["components"] = list(self.data["components"].values())
        write_json_atomic(self.path, out)

    def event(self, event: str, /, **fields: Any) -> None:
        append_jsonl(self.events_path, {"ts": now(), "event": event, **fields})

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.data.update(fields)
            self._flush()

    def phase(self, name: str, state: str = "running", **extra: Any) -> None:
        with self._lock:
            self.data["phases"][name] = state
            if state == "running":
                self.data["phase"] = name
            self._flush()
        self.event("phase", phase=name, state=state, **extra)
        print(f"[srt-agent] {now()} phase {name}: {state}", flush=True)

    def component(self, name: str, **fields: Any) -> None:
        with self._lock:
            comp = self.data["components"].setdefault(name, {"name": name})
            changed = {k: v for k, v in fields.items() if comp.get(k) != v}
            comp.update(fields)
            if "ready_at" in fields or "first_log_at" in fields:
                comp["time_to_ready"] = component_times(comp)
            self._flush()
        if "state" in changed:
            self.event("component", component=name, state=changed["state"],
                       **{k: v for k, v in changed.items() if k in ("exit_code", "node", "pid", "health")})

    def fail(self, message: str, *, component: str | None = None, node: str | None = None,
             exit_code: int | None = None, log_tail: list[str] | None = None) -> None:
        with self._lock:
            if self.data["failure"] is None:
                self.data["failure"] = {"component": component, "node": node, "exit_code": exit_code,
                                        "message": message, "log_tail": log_tail or []}
            self.data["state"] = "failed"
            self._flush()
        self.event("failure", component=component, node=node, exit_code=exit_code, message=message)
        print(f"[srt-agent] {now()} FAILED: {message}", flush=True)

    def benchmark(self, **fields: Any) -> None:
        with self._lock:
            self.data["benchmark"].update(fields)
            self._flush()

