"""Time to ready: where a job's startup time goes, for the job and for each component.

status.json `time_to_ready` (job):
  submitted_at, job_started_at, queue_wait_s, queue_source ("slurm": the scheduler's own
  SubmitTime/StartTime from `scontrol show job`; "local": metadata.json's submitted_at and the
  agent's start), agent_started_at, ready_at,
  steps_s {node_probe, preflight, infra, workers, endpoint, registration, smoke_request},
  agent_to_ready_s, submit_to_ready_s
status.json component `time_to_ready` (each process the agent starts):
  process_start_s (srun step / local spawn -> first line of its log), engine_ready_s (first log
  line -> healthy), start_to_ready_s (spawn -> healthy)
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import anyio

# the steps and their one-line summary are read by srtctl and the report too: the run directory's
from ..rundir import READY_STEPS as STEPS
from ..rundir import ready_summary as summary_line

__all__ = ["STEPS", "ReadyClock", "component_times", "parse_scontrol_times", "seconds_between", "slurm_times",
           "summary_line"]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.astimezone()  # naive: the cluster's local time


def seconds_between(a: str | None, b: str | None) -> float | None:
    da, db = _parse(a), _parse(b)
    return None if da is None or db is None else round((db - da).total_seconds(), 3)


def component_times(comp: dict) -> dict | None:
    """A component's breakdown from its started_at, first_log_at and ready_at."""
    out = {"process_start_s": seconds_between(comp.get("started_at"), comp.get("first_log_at")),
           "engine_ready_s": seconds_between(comp.get("first_log_at"), comp.get("ready_at")),
           "start_to_ready_s": seconds_between(comp.get("started_at"), comp.get("ready_at"))}
    return {k: v for k, v in out.items() if v is not None} or None


def parse_scontrol_times(text: str) -> tuple[str | None, str | None]:
    """(SubmitTime, StartTime) of `scontrol show job -o ID` output, as ISO strings with the local offset."""
    fields = dict(tok.split("=", 1) for tok in text.split() if "=" in tok)
    out = []
    for key in ("SubmitTime", "StartTime"):
        dt = _parse(fields.get(key))
        out.append(dt.isoformat(timespec="seconds") if dt else None)
    return out[0], out[1]


async def slurm_times(job_id: str) -> tuple[str | None, str | None]:
    with anyio.fail_after(20):
        res = await anyio.run_process(["scontrol", "show", "job", "-o", str(job_id)], check=False)
    if res.returncode != 0:
        return None, None
    return parse_scontrol_times(res.stdout.decode(errors="replace"))


class ReadyClock:
    """Collects the job's steps and writes `time_to_ready` into status.json."""

    def __init__(self, status) -> None:
        self.status = status
        self.t0 = time.time()
        self.data: dict = {"agent_started_at": _iso(self.t0), "steps_s": {}}
        self._began: dict[str, float] = {}

    def _flush(self) -> None:
        self.status.update(time_to_ready=dict(self.data, steps_s=dict(self.data["steps_s"])))

    async def queue_wait(self, launcher_kind: str, job_id: str, metadata: dict) -> None:
        """The queue wait, from SLURM's own times (or metadata.json locally); never fatal."""
        submitted = started = None
        source = "local"
        if launcher_kind == "slurm":
            try:
                submitted, started = await slurm_times(job_id)
                source = "slurm"
            except Exception:  # no scontrol, or it hung: the breakdown just lacks the queue wait
                submitted = started = None
        if submitted is None:
            submitted, started, source = metadata.get("submitted_at"), _iso(self.t0), "local"
        self.data.update(submitted_at=submitted, job_started_at=started, queue_source=source,
                         queue_wait_s=seconds_between(submitted, started))
        self._flush()

    def begin(self, name: str) -> None:
        self._began[name] = time.monotonic()

    def end(self, name: str) -> None:
        self.data["steps_s"][name] = round(time.monotonic() - self._began.pop(name), 3)
        self._flush()

    def ready(self) -> None:
        now = time.time()
        self.data["ready_at"] = _iso(now)
        self.data["agent_to_ready_s"] = round(now - self.t0, 3)
        self.data["submit_to_ready_s"] = seconds_between(self.data.get("submitted_at"), self.data["ready_at"])
        self._flush()

