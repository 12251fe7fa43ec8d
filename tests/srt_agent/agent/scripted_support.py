"""Run directories for in-process agent tests with the scripted launcher (agent/scripted_launcher.py).

`scripted_run(tmp_path, job_id, **job changes)` writes what `srtctl apply --local` writes (job.yaml,
resolved.json, metadata.json, through launcher.prepare) and returns the run directory; the job is
the simulated engine behind the sglang router unless changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from launcher.prepare import metadata, prepare, write_files
from srt_agent.agent.launchers import Launcher
from srt_agent.agent.run_context import RunContext, build_plan, load_context, render_scripts
from srt_agent.sim.model_dir import write_model_dir

ROUTER_JOB = {
    "name": "scripted",
    "model": {"path": "sim-model"},
    "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1,
                  "gpus_per_node": 2},
    "backend": {"engine": "sim", "use_sglang_router": True},
    "benchmark": {"type": "manual"},
    "health": {"worker_timeout_s": 5, "frontend_timeout_s": 5, "infra_timeout_s": 5, "shutdown_grace_s": 1},
}
DYNAMO_JOB = {  # NATS, etcd, Dynamo frontends behind nginx, mocker workers
    **ROUTER_JOB,
    "name": "scripted-dynamo",
    "resources": {"prefill_nodes": 1, "decode_nodes": 2, "prefill_workers": 1, "decode_workers": 2,
                  "gpus_per_node": 2},
    "backend": {"engine": "dynamo-mocker", "use_sglang_router": False, "num_additional_frontends": 1},
}


def merge(into: dict, new: dict) -> dict:
    out = dict(into)
    for k, v in new.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


MODEL_DIR: Path | None = None  # the session's simulated model directory (conftest: scripted_env)


def scripted_run(tmp_path: Path, job_id: str, base: dict = ROUTER_JOB, cluster_changes: dict | None = None,
                 **changes) -> Path:
    """A run directory as srtctl writes it (local executor), ready for run_agent."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    model = MODEL_DIR or tmp_path / "model"
    if not model.exists():
        write_model_dir(str(model))
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({"executor": "local", "container_runtime": "none",
                                       "node_addresses": "loopback", "model_paths": {"sim-model": str(model)},
                                       "logs_dir": str(tmp_path / "logs"), **(cluster_changes or {})}))
    job = merge(base, changes)
    job_file = tmp_path / f"{job['name']}.yaml"
    job_file.write_text(yaml.safe_dump(job, sort_keys=False))
    prep = prepare(job_file, cluster_file=cluster, local=True)
    run_dir = tmp_path / "logs" / f"{job_id}_run"
    write_files(run_dir, {**prep.files, "metadata.json": json.dumps(metadata(prep, job_id, "local")) + "\n"})
    return run_dir


def status_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def events_of(run_dir: Path, kind: str | None = None) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if kind is None or e["event"] == kind]


async def planned(tmp_path: Path, job_id: str, launcher: Launcher, base: dict = DYNAMO_JOB, **changes) -> RunContext:
    """The planned run context the agent has after its start phase (plan.json and launch scripts written)."""
    run = load_context(scripted_run(tmp_path, job_id, base, **changes), launcher)
    nodes = await launcher.discover_nodes(run.resolved.total_nodes)
    return render_scripts(run, build_plan(run, nodes))
