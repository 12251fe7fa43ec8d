"""Nothing the agent starts may outlive it. Three kernel mechanisms and one record:

- parent-death signal: every child is started through `setpriv --pdeathsig TERM` (util-linux),
  so the kernel sends it SIGTERM the moment the agent dies, SIGKILL included;
- child subreaper: the agent is PR_SET_CHILD_SUBREAPER, so grandchildren whose parent died
  (nginx workers, load-generator workers) become its children and are stopped at teardown;
- own process group: each child leads its own session/process group, so a stop reaches the
  child's whole tree (killpg);
- pids.json in the run directory: the pid, process group and start time of every process of
  the current attempt, so that `srtctl apply --resume` (through the next agent) and
  `srtctl status` can stop leftovers of an earlier attempt (e.g. a child that ignored SIGTERM).

docs/monitoring.md ("Stopping and orphans") says which mechanism covers which case.
"""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

# pids.json and the parent-death wrapper are the run directory's (srtctl reads the record too);
# re-exported here for the agent's modules
from ..rundir_pids import PIDS_FILE, PidRecord, alive, guarded, leftovers, read_record, start_time, stop_leftovers

__all__ = ["PIDS_FILE", "PR_SET_CHILD_SUBREAPER", "STARTED", "PidRecord", "alive", "become_subreaper", "guarded",
           "leftovers", "read_record", "start_time", "stop_adopted_children", "stop_leftovers"]

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


STARTED: set[int] = set()
"""Pids of every process a supervisor of this agent started (a sweep's shared NATS/etcd included)."""


def stop_adopted_children(known: set[int]) -> list[int]:
    """SIGKILL children of this process that it did not start (orphans adopted as subreaper)
    and reap them; their pids. Processes in `known` or in STARTED are left alone."""
    known = known | STARTED
    me = str(os.getpid())
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known:
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if fields[1] != me:
            continue
        pid = int(entry.name)
        try:
            os.kill(pid, signal.SIGKILL)
            out.append(pid)
        except ProcessLookupError:
            pass
    for pid in out:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return out
