"""The default number of load-generator worker processes: from the cores this process may use and
the event rate the point is expected to bring (docs/benchmarking.md, "How the client is built").

Usable cores = the CPU affinity mask (what SLURM's cpuset or taskset allow), further bounded by a
cgroup CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the nearest
limited ancestor counts), as container runtimes set it. The process count is the larger of what
the expected token events, the request starts and the first wave's burst of sends need, at least
1, at most the usable cores and the concurrency.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

# what one process handles with its event loop still on time, measured on this project's 2-core
# machine (docs/benchmarking.md, "Against the floor")
EVENTS_PER_PROCESS = 30_000.0  # token events/s at one event per read (a real-time stream)
REQUESTS_PER_PROCESS = 1_500.0  # request starts/s (keep-alive request + its record)
# a closed loop writes every slot's first request at T0, one write after another (6-14 us of CPU
# each on loopback, more wall time when the server on the same cores takes one); later requests
# are written by the callback that read the previous response's end and do not queue behind each
# other. So the first wave sets the client lag p99, and a process with more slots than this
# cannot write it within a few ms (docs/benchmarking.md, issue 18: C=256-1024 on 2 cores, two
# processes' first wave went out no later than one's in most runs)
BURST_SLOTS_PER_PROCESS = 128
DEFAULT_ITL_MS = 10.0  # assumed when the expected ITL is not given: a fast decode


def expected_event_rate(concurrency: int, osl: int, itl_ms: float | None,
                        request_rate: float = math.inf) -> tuple[float, float]:
    """(token events/s, requests/s) the client must sustain: every slot streams one event per ITL
    and starts a new request every OSL x ITL; a finite request rate caps both."""
    itl = (itl_ms if itl_ms and itl_ms > 0 else DEFAULT_ITL_MS) / 1000.0
    requests = concurrency / (max(osl, 1) * itl)
    if not math.isinf(request_rate):
        requests = min(requests, request_rate)
    return requests * max(osl, 1), requests


def auto_processes(concurrency: int, osl: int, itl_ms: float | None, cores: int,
                   request_rate: float = math.inf) -> int:
    """Worker processes for the expected load: enough that none exceeds its event, request or
    burst budget, never more than the usable cores or the concurrency."""
    events, requests = expected_event_rate(concurrency, osl, itl_ms, request_rate)
    need = max(events / EVENTS_PER_PROCESS, requests / REQUESTS_PER_PROCESS)
    if math.isinf(request_rate):  # Poisson arrivals do not come as a wave
        need = max(need, concurrency / BURST_SLOTS_PER_PROCESS)
    return max(1, min(cores, concurrency, math.ceil(need)))


def usable_cores(cgroup_root: str | os.PathLike = "/sys/fs/cgroup", proc_self: str | os.PathLike = "/proc/self") -> int:
    """Cores this process may run on: the affinity mask, bounded by a cgroup CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota(cgroup_root, proc_self)
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return max(1, cores)


def cgroup_cpu_quota(cgroup_root: str | os.PathLike = "/sys/fs/cgroup",
                     proc_self: str | os.PathLike = "/proc/self") -> float | None:
    """CPUs' worth of time the cgroup quota allows (e.g. 2.5), or None without a limit."""
    root = Path(cgroup_root)
    try:
        lines = (Path(proc_self) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        hier, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.strip("/")
        if hier == "0" and controllers == "":  # cgroup v2
            limits += [q for q in (_v2_quota(d) for d in _ancestors(root, rel)) if q is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in (root / "cpu", root / "cpu,cpuacct", root / "cpuacct,cpu"):
                if mount.is_dir():
                    limits += [q for q in (_v1_quota(d) for d in _ancestors(mount, rel)) if q is not None]
                    break
    return min(limits) if limits else None


def _ancestors(base: Path, rel: str) -> list[Path]:
    parts = [p for p in rel.split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(directory: Path) -> float | None:
    try:
        quota, period = (directory / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return _ratio(quota, period)


def _v1_quota(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None
