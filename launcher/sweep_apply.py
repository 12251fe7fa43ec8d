"""`srtctl apply` of a sweep: mode jobs (one sbatch job per member, or local runs one after the
other) here, mode allocation (every member in one allocation) in sweep_alloc. Every member was
prepared by sweep_cmd.load_request before anything is submitted.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from srt_agent.rundir import logs_dir

from . import sbatch
from .console import display
from .prepare import metadata, write_files
from .submit import json_text, local_job_id, print_started, print_submitted, run_local_agent, submit_held
from .sweep_alloc import apply_allocation
from .sweep_cmd import Request, member_rows, sweep_dir, sweep_json


def apply_sweep(req: Request, local: bool) -> int:
    assert req.sweep and req.preps
    if req.sweep.mode == "allocation":
        return apply_allocation(req, local)
    if local:
        return _apply_local(req)
    return _apply_slurm(req)


def _apply_slurm(req: Request) -> int:
    logs = logs_dir(req.cluster)
    rows = member_rows(req)
    submitted: list[tuple[str, Path]] = []  # (job id, directory) to undo on any failure
    try:
        for m, prep, row in zip(req.sweep.members, req.preps, rows):  # type: ignore[union-attr]
            job_id, run_dir = submit_held(logs, prep.timestamp, prep.files, cluster_file=prep.cluster.source,
                                          env=prep.secret_environment(),
                                          run_name=lambda jid, prep=prep: f"{jid}{prep.run_suffix}")
            submitted.append((job_id, run_dir))
            meta = {**metadata(prep, job_id, "slurm"), "sweep": req.sweep_id, "sweep_values": m.values}
            write_files(run_dir, {"metadata.json": json_text(meta)})
            row.update(job_id=job_id, run_dir=str(run_dir))
        write_files(sweep_dir(req), {"sweep.json": sweep_json(req, rows, executor="slurm")})
    except BaseException:
        for job_id, directory in submitted:
            sbatch.cancel(job_id)
            shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(sweep_dir(req), ignore_errors=True)
        raise
    for job_id, run_dir in submitted:
        sbatch.release(job_id)
        print_submitted(job_id, run_dir)
    print(f"Sweep {req.sweep_id}: {len(submitted)} jobs, {display(sweep_dir(req))}/sweep.json")
    return 0


def _apply_local(req: Request) -> int:
    logs = logs_dir(req.cluster)
    rows = member_rows(req)
    base = int(local_job_id())
    runs = []
    for i, (m, prep, row) in enumerate(zip(req.sweep.members, req.preps, rows)):  # type: ignore[union-attr]
        job_id = str(base + i)
        run_dir = logs / f"{job_id}{prep.run_suffix}"
        meta = {**metadata(prep, job_id, "local"), "sweep": req.sweep_id, "sweep_values": m.values}
        write_files(run_dir, {**prep.files, "metadata.json": json_text(meta)})
        row.update(job_id=job_id, run_dir=str(run_dir))
        runs.append((job_id, run_dir, prep))
    write_files(sweep_dir(req), {"sweep.json": sweep_json(req, rows, executor="local")})
    print(f"Sweep {req.sweep_id}: {len(runs)} local jobs, {display(sweep_dir(req))}/sweep.json")
    worst = 0
    for job_id, run_dir, prep in runs:
        print_started(job_id, run_dir)
        code = run_local_agent(run_dir, job_id, extra_env=prep.secret_environment())
        worst = worst or code
        if code in (130, 143):  # stopped by a signal: the rest of the sweep is not started
            break
    return worst
