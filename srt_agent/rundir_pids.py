"""pids.json of a run directory: every process an attempt started (pid, process group, start time,
host), whether it still runs, and stopping leftovers of an earlier attempt; and `guarded`, the
parent-death wrapper those processes are started through.

The agent writes the record (PidRecord) and stops leftovers when it resumes a run; srtctl stops them
when it finds a local run's agent gone. The agent's other guards (subreaper, adopted orphans) are
in srt_agent/agent/procguard.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from .atomic import write_json_atomic

PIDS_FILE = "pids.json"


def guarded(argv: list[str], sig: str = "TERM") -> list[str]:
    """argv run with a parent-death signal (kept across the launch script's exec)."""
    setpriv = shutil.which("setpriv")
    return [setpriv, f"--pdeathsig={sig}", *argv] if setpriv else list(argv)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (pids are reused; this is not), or None
    if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(entry: dict) -> bool:
    """Is the recorded process still that process, on this machine?"""
    if entry.get("host") not in (None, socket.gethostname()):
        return False
    pid = entry.get("pid")
    return isinstance(pid, int) and start_time(pid) is not None and start_time(pid) == entry.get("start")


class PidRecord:
    """pids.json: {"agent": {...}, "processes": {name: {pid, pgid, start, host}}} (atomic writes)."""

    def __init__(self, run_dir: Path, executor: str, job_id: str) -> None:
        self.path = Path(run_dir) / PIDS_FILE
        me = os.getpid()
        self.data = {"executor": executor, "job_id": job_id,
                     "agent": {"pid": me, "start": start_time(me), "host": socket.gethostname()},
                     "processes": {}}
        write_json_atomic(self.path, self.data)

    def add(self, name: str, pid: int, step: str | None = None) -> None:
        self.data["processes"][name] = {"pid": pid, "pgid": pid, "start": start_time(pid),
                                        "host": socket.gethostname(), "step": step}
        write_json_atomic(self.path, self.data)


def read_record(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / PIDS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def leftovers(run_dir: Path) -> dict[str, dict]:
    """Recorded processes of an earlier attempt that still run on this machine."""
    rec = read_record(run_dir) or {}
    return {n: e for n, e in (rec.get("processes") or {}).items() if alive(e)}


def stop_leftovers(run_dir: Path, grace: float = 5.0) -> list[str]:
    """SIGTERM the process groups of leftovers, SIGKILL what is left after `grace`; their names."""
    found = leftovers(run_dir)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for e in found.values():
            if alive(e):
                for kill in (lambda: os.killpg(e["pgid"], sig), lambda: os.kill(e["pid"], sig)):
                    try:
                        kill()
                        break
                    except (ProcessLookupError, PermissionError):
                        continue
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 2.0)
        while time.monotonic() < deadline and any(alive(e) for e in found.values()):
            time.sleep(0.05)
    return sorted(found)
