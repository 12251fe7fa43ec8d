"""The run context: loaded from the run directory, then planned on the discovered nodes."""

from __future__ import annotations

import json
import os

import pytest
from scripted_support import DYNAMO_JOB, ROUTER_JOB, scripted_run

from srt_agent.agent.launchers import LocalLauncher, SrunLauncher
from srt_agent.agent.run_context import (
    LoadedRun,
    RunContext,
    build_plan,
    choose_launcher,
    load_context,
    render_scripts,
)
from srt_agent.agent.scripted_launcher import ScriptedLauncher
from srt_agent.secrets import SECRETS_ENV_VAR

pytestmark = pytest.mark.usefixtures("scripted_env")


def test_loading_reads_the_run_and_takes_the_job_id_from_slurm(tmp_path, monkeypatch):
    run_dir = scripted_run(tmp_path, "1201")
    run = load_context(run_dir)
    assert type(run) is LoadedRun and not hasattr(run, "plan")
    assert run.job_id == "1201" and run.job.name == "scripted" and isinstance(run.launcher, LocalLauncher)
    assert run.status.data["executor"] == "local" and run.shared == frozenset()
    monkeypatch.setenv("SLURM_JOB_ID", "98765")  # a requeued job keeps its id; SLURM's wins
    monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu-[0-1]")
    monkeypatch.setenv("SRT_EXECUTOR", "slurm")
    again = load_context(run_dir)
    assert again.job_id == "98765" and again.metadata["job_id"] == "98765"
    assert isinstance(again.launcher, SrunLauncher) and again.launcher.nodelist == "gpu-[0-1]"


def test_the_launcher_follows_the_executor(tmp_path, monkeypatch):
    resolved = load_context(scripted_run(tmp_path, "1202")).resolved
    assert isinstance(choose_launcher(resolved, "1"), LocalLauncher)
    monkeypatch.setenv("SRT_EXECUTOR", "slurm")
    srun = choose_launcher(resolved, "77")
    assert isinstance(srun, SrunLauncher) and srun.job_id == "77" and srun.address_mode == "loopback"


def test_secrets_come_from_the_environment_once(tmp_path, monkeypatch):
    run_dir = scripted_run(tmp_path, "1203", ROUTER_JOB, backend={"prefill_environment": {"HF_TOKEN": "x"}})
    assert "hf_real_secret" not in (run_dir / "resolved.json").read_text()
    monkeypatch.setenv(SECRETS_ENV_VAR, json.dumps({"prefill_environment": {"HF_TOKEN": "hf_real_secret"}}))
    run = load_context(run_dir)
    assert SECRETS_ENV_VAR not in os.environ  # taken: processes get only the ones their role needs
    assert run.job.backend.prefill_environment["HF_TOKEN"] == "hf_real_secret"


async def test_planning_writes_plan_json_and_scripts_and_returns_the_planned_run(tmp_path):
    async with ScriptedLauncher() as launcher:
        run = load_context(scripted_run(tmp_path, "1204", DYNAMO_JOB), launcher)
        run.shared = frozenset({"nats"})
        nodes = await launcher.discover_nodes(run.resolved.total_nodes)
        plan = build_plan(run, nodes)
        ctx = render_scripts(run, plan)
    assert type(ctx) is RunContext and ctx.plan is plan and ctx.status is run.status and ctx.shared == {"nats"}
    on_disk = json.loads((ctx.run_dir / "plan.json").read_text())
    assert on_disk["job_id"] == "1204" and [p["name"] for p in on_disk["processes"]] == [p.name for p in plan.processes]
    assert on_disk["executor"] is None  # the scripted launcher runs no `launch` argv
    assert set(ctx.scripts) == {p.name for p in plan.processes} == set(ctx.secret_env)
    assert all((ctx.run_dir / "launch" / f"{name}.sh").is_file() for name in ctx.scripts)
    assert (ctx.run_dir / "infra" / "nats.conf").is_file() and (ctx.run_dir / "nginx" / "nginx.conf").is_file()
    assert ctx.nginx_files is not None


async def test_local_planning_records_the_launch_argv_of_every_process(tmp_path):
    run = load_context(scripted_run(tmp_path, "1205"))
    plan = build_plan(run, await run.launcher.discover_nodes(run.resolved.total_nodes))
    assert plan.executor == "local"
    assert all(p.launch == ["bash", str(run.run_dir / "launch" / f"{p.name}.sh")] for p in plan.processes)
