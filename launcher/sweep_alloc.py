"""`sweep.mode: allocation`: every member in one sbatch allocation, sized for the largest member.

    logs/<jobid>_sweep_<ts>/          the allocation's directory (job.sbatch, slurm-<id>.out,
        sweep.json, metadata.json     sweep_progress.json)
        <member>/                     one run directory per member (job.yaml, resolved.json,
                                      metadata.json; the agent adds status.json, ledger.json, ...)
    logs/sweeps/<sweep id>/sweep.json where `srtctl status/runs/report` find the sweep

The agent (`python -m srt_agent SWEEP_DIR`, srt_agent.agent.sweep_runner) runs the members in order.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from srt_agent.rundir import logs_dir

from . import sbatch
from .console import display
from .prepare import Prepared, metadata, render_sbatch, write_files
from .submit import local_job_id, print_started, print_submitted, resume, run_local_agent, submit_held
from .sweep_cmd import member_rows, sweep_dir, sweep_json


def _allocation_prep(req) -> tuple[Prepared, int]:
    rows_nodes = [p.resolved.total_nodes for p in req.preps]
    nodes = req.sweep.nodes or max(rows_nodes)
    first = req.preps[0]
    return dataclasses.replace(first, run_suffix=f"_sweep_{req.timestamp}"), nodes


def allocation_files(req, run_dir: str | None = None) -> dict[str, str]:
    """The allocation's sbatch script (dry-run writes it next to sweep.json)."""
    prep, nodes = _allocation_prep(req)
    return {"job.sbatch": render_sbatch(prep, fixed_run_dir=None, nodes=nodes, job_name=req.name)}


def _member_files(req, job_id: str, executor: str, sweep_dir: Path) -> dict[str, str]:
    files = {}
    for m, prep in zip(req.sweep.members, req.preps):
        files.update({f"{m.name}/{k}": v for k, v in prep.files.items() if k != "job.sbatch"})
        meta = {**metadata(prep, job_id, executor), "sweep": req.sweep_id, "sweep_values": m.values,
                "allocation_dir": str(sweep_dir)}
        files[f"{m.name}/metadata.json"] = json.dumps(meta, indent=2) + "\n"
    return files


def _top_files(req, job_id: str, executor: str, alloc_dir: Path, rows: list[dict]) -> dict[str, str]:
    for r in rows:
        r.update(job_id=job_id, run_dir=str(alloc_dir / r["name"]))
    prep, nodes = _allocation_prep(req)
    meta = {**metadata(prep, job_id, executor), "name": req.name, "sweep": req.sweep_id, "mode": "sweep",
            "nodes": nodes, "members": len(rows)}
    return {"sweep.json": sweep_json(req, rows, executor=executor, job_id=job_id),
            "metadata.json": json.dumps(meta, indent=2) + "\n"}


def apply_allocation(req, local: bool) -> int:
    logs = logs_dir(req.cluster)
    rows = member_rows(req)
    pointer = sweep_dir(req)
    env = req.preps[0].secret_environment()
    if local:
        job_id = local_job_id()
        run_dir = logs / f"{job_id}_sweep_{req.timestamp}"
        write_files(run_dir, {**_member_files(req, job_id, "local", run_dir),
                              **_top_files(req, job_id, "local", run_dir, rows)})
        write_files(pointer, {"sweep.json": (run_dir / "sweep.json").read_text()})
        print_started(job_id, run_dir)
        print(f"Sweep {req.sweep_id}: {len(rows)} members in one allocation, {display(pointer)}/sweep.json",
              flush=True)
        return run_local_agent(run_dir, job_id, extra_env=env)
    job_id, run_dir = submit_held(logs, req.timestamp, allocation_files(req), cluster_file=req.cluster.source,
                                  env=env, run_name=lambda jid: f"{jid}_sweep_{req.timestamp}")
    try:
        write_files(run_dir, {**_member_files(req, job_id, "slurm", run_dir),
                              **_top_files(req, job_id, "slurm", run_dir, rows)})
        write_files(pointer, {"sweep.json": (run_dir / "sweep.json").read_text()})
    except BaseException:
        sbatch.cancel(job_id)
        shutil.rmtree(pointer, ignore_errors=True)
        raise
    sbatch.release(job_id)
    print_submitted(job_id, run_dir)
    print(f"Sweep {req.sweep_id}: {len(rows)} members in one allocation, {display(pointer)}/sweep.json")
    return 0


def resume_allocation(run_dir: Path, meta: dict, args) -> int:
    """`srtctl apply --resume SWEEP_DIR`: the same directory, continuing at the first unfinished member."""
    info = json.loads((run_dir / "sweep.json").read_text())
    first = run_dir / info["members"][0]["name"]
    return resume(run_dir, meta, resolved_json=first / "resolved.json", force=args.force, local=args.local,
                  nodes=info["allocation_nodes"], job_name=info["name"])
