"""After SLURM's time-limit warning (SIGUSR1) stopped a run with work left, requeue the job.

The agent asks `scontrol requeue $SLURM_JOB_ID` (the batch script has `--requeue`) at most
`slurm.max_requeues` times, counted by SLURM's `SLURM_RESTART_COUNT`. The requeued attempt runs the
same batch script, so it gets the same job id and run directory and resumes from `ledger.json`.
Status and events say what happened: `requeued` (with the attempt), or `requeue_skipped` with why.
"""

from __future__ import annotations

import os

import anyio

from .status import StatusWriter


async def requeue_after_warning(status: StatusWriter, max_requeues: int) -> bool:
    """Requeue this SLURM job; False (and why, in status/events) when the cap or scontrol stops it."""
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        return False
    restarts = int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    base = status.data.get("message") or ""
    if restarts >= max_requeues:
        reason = f"slurm.max_requeues ({max_requeues}) reached after {restarts} requeue(s)"
        status.event("requeue_skipped", reason=reason, restarts=restarts, max_requeues=max_requeues)
        status.update(message=f"{base}; not requeued: {reason}", requeue={"requeued": False, "reason": reason,
                                                                           "restarts": restarts})
        print(f"[srt-agent] not requeued: {reason}", flush=True)
        return False
    # written before the call: the requeue ends this batch step (and the agent) at once
    status.event("requeued", job_id=job_id, restarts=restarts + 1, max_requeues=max_requeues)
    status.update(message=f"{base}; requeued job {job_id} (requeue {restarts + 1} of {max_requeues}), "
                          "the next attempt resumes here",
                  requeue={"requeued": True, "restarts": restarts + 1, "max_requeues": max_requeues})
    print(f"[srt-agent] requeueing job {job_id} (requeue {restarts + 1} of {max_requeues})", flush=True)
    try:
        res = await anyio.run_process(["scontrol", "requeue", job_id], check=False)
    except OSError as exc:
        res, err = None, str(exc)
    else:
        err = res.stderr.decode(errors="replace").strip()
    if res is None or res.returncode != 0:
        reason = f"scontrol requeue {job_id} failed: {err or 'exit ' + str(res.returncode)}"  # type: ignore[union-attr]
        status.event("requeue_skipped", reason=reason, restarts=restarts, max_requeues=max_requeues)
        status.update(message=f"{base}; not requeued: {reason}", requeue={"requeued": False, "reason": reason,
                                                                           "restarts": restarts})
        print(f"[srt-agent] not requeued: {reason}", flush=True)
        return False
    return True
