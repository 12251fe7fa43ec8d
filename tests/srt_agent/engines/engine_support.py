"""Helpers of the engine tests: a resolved job from a few keys, its plan on loopback nodes."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.plan import NodeInfo, Plan, PlanInputs, make_plan
from srt_agent.resolved import ResolvedJob, load_job_text

REPO = Path(__file__).resolve().parents[3]
AGG = {"agg_nodes": 1, "agg_workers": 1}
DISAGG = {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1}


def resolved(backend: dict, *, resources: dict | None = None, profiling: str = "none", container: bool = False,
             dynamo_venv: str | None = None, model: str = "/models/tiny") -> ResolvedJob:
    job = {"name": "engine-test",
           "model": {"path": model, **({"container": "/c/sglang+v0.5.5.sqsh"} if container else {})},
           "resources": {**(resources or AGG), "gpus_per_node": 1}, "backend": backend,
           "benchmark": {"type": "manual"}, "profiling": {"type": profiling}}
    cluster = {"gpus_per_node": 1, "container_runtime": "pyxis" if container else "none",
               "executor": "slurm" if container else "local", "dynamo_venv": dynamo_venv}
    return load_job_text(yaml.safe_dump(job), ClusterConfig.model_validate(cluster), "job.yaml")


def plan_of(r: ResolvedJob, nodes: int = 2, log_dir: str = "/runs/r") -> Plan:
    return make_plan(r, PlanInputs(job_id="1", nodes=[NodeInfo(f"n{i}", "127.0.0.1") for i in range(nodes)],
                                   log_dir=log_dir, srtctl_root=str(REPO), host_python=sys.executable))
