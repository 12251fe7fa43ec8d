"""Finding run directories and reading what is in them, for status/logs/watch/runs/report.

A run is named by its directory (`12345_1P_2D_20251122_143052`), a prefix of that name, its
job id (the leading number, or the id of a later attempt recorded in status.json), or a path.
Readers tolerate missing and half-written runs: a pending SLURM job has no status.json yet.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from srt_agent.errors import RunNotFound
from srt_agent.evals.summary import load_eval_results
from srt_agent.report import load_points, per_gpu_value
from srt_agent.rundir import TERMINAL_STATES, read_json, record_agent_died
from srt_agent.rundir import logs_dir as cluster_logs_dir
from srt_agent.rundir_pids import stop_leftovers

RUN_NAME_RE = re.compile(r"^(?P<job>\d+)_(?:(?P<p>\d+)P_(?P<d>\d+)D|(?P<a>\d+)A)_(?P<ts>\d{8}_\d{6})$")
# a run's status.json that has not changed for this long while no agent process is found
# on this machine means the (local) agent is gone
LOCAL_STALE_S = 30.0
# following a run (logs -f, watch) asks squeue at most this often
SLURM_CHECK_S = 15.0


def add_logs_dir_argument(parser) -> None:
    parser.add_argument("--logs-dir", metavar="DIR",
                        help="where run directories are (default: logs_dir of srtslurm.yaml, else ./logs)")


def logs_root(logs_dir: str | None = None) -> Path:
    if logs_dir:
        return Path(logs_dir).resolve()
    # the cluster file's pydantic models only when no --logs-dir is given
    from srt_agent.cluster_config import load_cluster_config  # lazy, CLI start-up

    return cluster_logs_dir(load_cluster_config())


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("metadata.json", "status.json", "job.sbatch"))


def parse_run_name(name: str) -> dict[str, str] | None:
    """job id, topology and timestamp from a run directory name, or None."""
    m = RUN_NAME_RE.match(name)
    if not m:
        return None
    topo = f"{m['p']}P_{m['d']}D" if m["p"] is not None else f"{m['a']}A"
    return {"job_id": m["job"], "topology": topo, "timestamp": m["ts"]}


def run_dirs(root: Path) -> list[Path]:
    """Run directories under root, newest first (staging `.pending-*` directories skipped)."""
    try:
        entries = [p for p in root.iterdir() if not p.name.startswith(".") and is_run_dir(p)]
    except FileNotFoundError:
        return []
    # a sweep in one allocation: its members are the runs (SWEEP_DIR/<member>/)
    entries = [m for p in entries for m in (_sweep_members(p) if (p / "sweep.json").is_file() else [p])]
    return sorted(entries, key=_sort_key, reverse=True)


def _sweep_members(path: Path) -> list[Path]:
    info = read_json(path / "sweep.json") or {}
    return [path / m["name"] for m in info.get("members", []) if is_run_dir(path / m["name"])]


def _sort_key(path: Path) -> float:
    info = parse_run_name(path.name)
    if info:
        try:
            return datetime.strptime(info["timestamp"], "%Y%m%d_%H%M%S").timestamp()
        except ValueError:
            pass
    return path.stat().st_mtime


def find_run(ref: str, root: Path) -> Path:
    """The run directory `ref` names: a path, a directory name or prefix, or a job id."""
    p = Path(ref).expanduser()
    if is_run_dir(p):
        return p.resolve()
    if os.sep in ref.rstrip(os.sep) or ref.startswith("."):
        raise RunNotFound(f"{ref} is not a run directory (no metadata.json or status.json in it)")
    ref = ref.rstrip(os.sep)
    runs = run_dirs(root)
    exact = [r for r in runs if r.name == ref]
    if exact:
        return exact[0]
    if ref.isdigit():
        by_job = [r for r in runs if r.name.split("_", 1)[0] == ref]
        if not by_job:  # a resumed SLURM run keeps its directory but gets a new job id
            by_job = [r for r in runs if str((read_json(r / "status.json") or {}).get("job_id")) == ref]
        if len(by_job) == 1:
            return by_job[0]
        if len(by_job) > 1:
            raise RunNotFound(f"job id {ref} matches several runs: {', '.join(r.name for r in by_job)}")
    prefixed = [r for r in runs if r.name.startswith(ref)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        shown = ", ".join(r.name for r in prefixed[:8]) + (" ..." if len(prefixed) > 8 else "")
        raise RunNotFound(f"'{ref}' matches {len(prefixed)} runs: {shown}; give more of the name")
    raise RunNotFound(f"no run '{ref}' in {root}" + ("" if runs else " (no runs there)")
                      + "; `srtctl runs` lists them, --logs-dir DIR looks elsewhere")


@dataclass
class RunView:
    """Everything the monitoring commands show about one run, read from its directory."""

    path: Path
    metadata: dict = field(default_factory=dict)
    status: dict | None = None
    slurm: dict | None = None
    liveness: str | None = None  # why a non-terminal run is known to be over, else None

    @property
    def name(self) -> str:
        return self.metadata.get("name") or (self.status or {}).get("name") or self.path.name

    @property
    def job_id(self) -> str:
        jid = (self.status or {}).get("job_id") or self.metadata.get("job_id")
        if jid is None:
            jid = (parse_run_name(self.path.name) or {}).get("job_id", "?")
        return str(jid)

    @property
    def topology(self) -> str:
        return self.metadata.get("topology") or (parse_run_name(self.path.name) or {}).get("topology", "?")

    @property
    def executor(self) -> str:
        return (self.status or {}).get("executor") or self.metadata.get("executor") or "?"

    @property
    def state(self) -> str:
        if self.status and self.status.get("state"):
            return self.status["state"]
        slurm_state = (self.slurm or {}).get("state")
        if slurm_state in ("PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED"):
            return "queued"
        if slurm_state in ("RUNNING", "COMPLETING"):
            return "starting"
        return "unknown"

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def over(self) -> bool:
        """Nothing will change any more: a terminal state, or the agent is gone."""
        return self.terminal or self.liveness is not None

    @property
    def phase(self) -> str:
        return (self.status or {}).get("phase") or "-"

    @property
    def submitted(self) -> datetime | None:
        text = self.metadata.get("submitted_at")
        if text:
            try:
                dt = datetime.fromisoformat(text)
                return dt if dt.tzinfo else dt.astimezone()
            except ValueError:
                pass
        info = parse_run_name(self.path.name)
        if info:
            return datetime.strptime(info["timestamp"], "%Y%m%d_%H%M%S").astimezone()
        return None

    @property
    def tags(self) -> list[str]:
        return list(self.metadata.get("tags") or [])


def load_view(path: Path, *, query_slurm: bool = True) -> RunView:
    view = RunView(path=path, metadata=read_json(path / "metadata.json") or {},
                   status=read_json(path / "status.json"))
    if query_slurm and view.executor == "slurm" and not view.terminal:
        view.slurm = squeue_state(view.job_id)
    view.liveness = liveness(view)
    if view.liveness is not None and view.status is not None:
        _record_agent_died(view)
    return view


def _record_agent_died(view: RunView) -> None:
    """The agent is gone: the run is failed ("agent died"), and leftovers of its processes that
    still run on this machine (pids.json) are stopped."""
    if view.executor == "local":
        try:
            stop_leftovers(view.path, grace=2.0)
        except OSError:
            pass
    try:
        view.status = record_agent_died(view.path, view.liveness or "gone") or view.status
    except OSError:  # a read-only run directory: still shown as gone, just not recorded
        pass


def refresh(view: RunView, *, query_slurm: bool) -> RunView:
    """Re-read a run; without a new squeue answer the previous one is kept."""
    new = load_view(view.path, query_slurm=query_slurm)
    if not query_slurm and new.slurm is None and view.slurm is not None and not new.terminal:
        new.slurm = view.slurm
        new.liveness = liveness(new)
    return new


def follow_views(view: RunView, *, interval: float, max_seconds: float | None = None) -> Iterator[RunView]:
    """`view`, then the run re-read every `interval` seconds until it is over (final state or agent
    gone) or `max_seconds` have passed; squeue is asked at most every SLURM_CHECK_S. For the
    commands that follow a run (logs -f, watch)."""
    started = last_slurm = time.monotonic()
    yield view
    while not view.over:
        if max_seconds is not None and time.monotonic() - started > max_seconds:
            return
        time.sleep(interval)
        ask = time.monotonic() - last_slurm > SLURM_CHECK_S
        if ask:
            last_slurm = time.monotonic()
        view = refresh(view, query_slurm=ask)
        yield view


def slurm_reachable() -> bool:
    """squeue exists and has a config file (without one it asks DNS for the controller)."""
    if shutil.which("squeue") is None:
        return False
    conf = os.environ.get("SLURM_CONF")
    if conf:
        return Path(conf).is_file()
    return Path("/etc/slurm/slurm.conf").is_file() or Path("/etc/slurm-llnl/slurm.conf").is_file()


def squeue_state(job_id: str, timeout: float = 5.0) -> dict | None:
    """{"state", "reason", "elapsed", "time_limit", "nodes"} of a queued or running job;
    {"state": "GONE"} once SLURM no longer lists it; None when SLURM cannot be asked."""
    if not job_id.isdigit() or not slurm_reachable():
        return None
    try:
        res = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T|%r|%M|%l|%N"], capture_output=True,
                             text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        # squeue exits 1 with "Invalid job id specified" once the job has left the queue
        return {"state": "GONE"} if "invalid job id" in res.stderr.lower() else None
    line = res.stdout.strip().splitlines()[0] if res.stdout.strip() else ""
    if not line:
        return {"state": "GONE"}
    parts = (line.split("|") + [""] * 5)[:5]
    return {"state": parts[0], "reason": parts[1], "elapsed": parts[2], "time_limit": parts[3], "nodes": parts[4]}


def liveness(view: RunView) -> str | None:
    """Why a run without a terminal state will not change any more, or None if it may."""
    if view.terminal:
        return None
    if view.slurm is not None:
        if view.slurm.get("state") == "GONE":
            return "the SLURM job is no longer in the queue but status.json never reached a final state"
        return None
    if view.executor != "local" or view.status is None:
        return None
    pid, host = view.status.get("agent_pid"), view.status.get("agent_host")
    if isinstance(pid, int) and host == socket.gethostname():  # exact answer at once: is that pid the agent?
        if local_agent_running(view.path, view.status):
            return None
        return f"agent process {pid} on {host} is gone and status.json never reached a final state"
    try:
        age = time.time() - (view.path / "status.json").stat().st_mtime
    except FileNotFoundError:
        return None
    if age < LOCAL_STALE_S or local_agent_running(view.path, view.status):
        return None
    return f"no agent process for this run on {socket.gethostname()} and status.json unchanged for {age:.0f} s"


def local_agent_running(run_dir: Path, status: dict | None = None) -> bool:
    """Is an agent (`python -m srt_agent RUN_DIR`) for this run alive on this machine?

    status.json's agent_pid is checked first, and only counts if that process is still the agent
    of this run (pids are reused); otherwise every process's command line is scanned."""
    target = str(run_dir.resolve())
    proc = Path("/proc")
    if not proc.is_dir():
        return True  # cannot tell: assume alive

    def is_agent(entry: Path) -> bool:
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        args = [a.decode(errors="replace") for a in argv if a]
        return "srt_agent" in args and any(a.rstrip("/") == target for a in args)

    pid = (status or {}).get("agent_pid")
    if isinstance(pid, int) and (status or {}).get("agent_host") in (None, socket.gethostname()):
        if is_agent(proc / str(pid)):
            return True
    return any(is_agent(entry) for entry in proc.iterdir() if entry.name.isdigit())


# ---------------------------------------------------------------------------- results


def headline(points: list[dict]) -> dict:
    """Best output tok/s and best output tok/s per GPU over a sweep."""
    best_out = max((p.get("output_throughput") or 0.0 for p in points), default=None)
    per_gpu = [v for v in (per_gpu_value(p, "total") for p in points) if v is not None]
    return {"points": len(points), "best_output_tok_s": best_out,
            "best_output_tok_s_per_gpu": max(per_gpu) if per_gpu else None}


def run_row(view: RunView) -> dict:
    """One run as `srtctl runs` lists it (and a sweep's member rows)."""
    points = load_points(view.path)
    bench = (view.status or {}).get("benchmark") or {}
    sub = view.submitted
    return {
        "run": view.path.name, "run_dir": str(view.path), "name": view.name, "job_id": view.job_id,
        "tags": view.tags, "topology": view.topology, "mode": view.metadata.get("mode"),
        "gpus": view.metadata.get("gpus"), "state": view.state, "phase": view.phase,
        "agent_gone": view.liveness, "submitted_at": sub.astimezone().isoformat(timespec="seconds") if sub else None,
        "points_done": bench.get("points_done", len(points)), "points_total": bench.get("points_total", 0),
        **headline(points),
        "ready_s": _ready_s(view),
        "accuracy": {r["task"]: r["score"] for r in load_eval_results(view.path)},
    }


def _ready_s(view: RunView) -> float | None:
    """Submit (or agent start) to ready, from status.json's time_to_ready."""
    ttr = (view.status or {}).get("time_to_ready") or {}
    return ttr.get("submit_to_ready_s") or ttr.get("agent_to_ready_s")

