"""srt_agent.engines.sim: the simulated engine's command, its `--help`, and the router endpoint's
registration check against a real sglang-router in front of real simulated workers (127.0.0.1)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from engine_support import DISAGG, REPO, plan_of, resolved

from srt_agent.agent.health import http_client
from srt_agent.agent.preflight import parse_help_flags
from srt_agent.engines import engine_of
from srt_agent.engines.sim import SimEngine
from srt_agent.plan import Endpoint, NodeSpec, Plan, ProcessSpec, WorkerSpec
from srt_agent.sim.model_dir import write_model_dir

SIM = {"engine": "sim", "use_sglang_router": True, "sim": {"seed": 7, "startup_s": 0}}


def test_worker_command_carries_the_sim_timing_and_a_seed_per_worker():
    plan = plan_of(resolved(SIM, resources={"agg_nodes": 2, "agg_workers": 2}))
    seeds = []
    for w in plan.workers:
        cmd = plan.process(w.processes[0]).command
        assert cmd[1:3] == ["-m", "srt_agent.sim"] and "--sim-startup-s" in cmd
        assert "--enable-metrics" not in cmd  # the simulated engine serves /metrics anyway
        seeds.append(cmd[cmd.index("--sim-seed") + 1])
    assert seeds == ["7", "8"]


def test_in_a_container_the_worker_finds_srt_agent_on_its_pythonpath():
    plan = plan_of(resolved(SIM, container=True))
    assert plan.process("agg-0").env["PYTHONPATH"] == "/srtctl"
    assert "PYTHONPATH" not in plan_of(resolved(SIM)).process("agg-0").env


def test_disaggregated_workers_serve_http_with_bootstrap_on_prefill():
    plan = plan_of(resolved(SIM, resources=DISAGG))
    assert type(engine_of(plan)) is SimEngine
    p, d = plan.process("prefill-0"), plan.process("decode-0")
    assert "--disaggregation-bootstrap-port" in p.command and "--disaggregation-bootstrap-port" not in d.command
    assert p.port == plan.workers[0].http_port and p.dynamo_version is None and p.module == "srt_agent.sim"


def test_its_help_command_lists_the_flags_the_preflight_checks(tmp_path):
    plan = plan_of(resolved(SIM))
    cmd = SimEngine().help_command(plan.process("agg-0"))
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert res.returncode == 0, res.stderr
    known = parse_help_flags(res.stdout)
    assert {"sim-decode-step-ms", "mem-fraction-static", "enable-metrics", "tp-size"} <= known


# ---- registration through a real router ----------------------------------------------------------------


@pytest.fixture
def servers(tmp_path):
    procs: list[subprocess.Popen] = []

    def start(argv: list[str], port: int, name: str) -> None:
        with open(tmp_path / f"{name}.log", "wb") as log:
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
        deadline = time.monotonic() + 30
        while True:
            assert procs[-1].poll() is None, (tmp_path / f"{name}.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / f"{name}.log").read_text()
            time.sleep(0.1)

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def two_worker_plan(ports: list[int], router_port: int) -> Plan:
    procs = [ProcessSpec(name=f"agg-{i}", kind="worker", node="n0", address="127.0.0.1", role="agg", worker=i,
                         command=["sim"], port=p, health_path="/health") for i, p in enumerate(ports)]
    procs.append(ProcessSpec(name="router", kind="router", node="n0", address="127.0.0.1", command=["router"],
                             port=router_port, health_path="/health"))
    workers = [WorkerSpec(role="agg", index=i, nodes=["n0"], leader="n0", leader_address="127.0.0.1", gpus=[0],
                          http_port=p, tp=1, dp=1, ep=1, processes=[f"agg-{i}"]) for i, p in enumerate(ports)]
    return Plan(job_id="1", mode="aggregated", engine="sim", head_node="n0",
                nodes=[NodeSpec(name="n0", address="127.0.0.1", roles=["agg", "router"])], workers=workers,
                processes=procs, endpoint=Endpoint(kind="router", node="n0", address="127.0.0.1", port=router_port),
                served_model_name="tiny", model_path="/m", port_base=0, total_gpus=2, decode_gpus=2)


def test_registered_once_the_router_lists_every_worker(tmp_path, servers, free_ports):
    if importlib.util.find_spec("sglang_router") is None:
        pytest.skip("sglang-router is not installed")
    model = write_model_dir(Path(tmp_path) / "tiny")
    w0, w1, router_port, metrics_port = free_ports(4)
    servers([sys.executable, "-m", "srt_agent.sim", "--model-path", str(model), "--served-model-name", "tiny",
             "--host", "127.0.0.1", "--port", str(w0), "--sim-startup-s", "0"], w0, "agg-0")
    servers([sys.executable, "-m", "sglang_router.launch_router", "--host", "127.0.0.1", "--port", str(router_port),
             "--prometheus-host", "127.0.0.1", "--prometheus-port", str(metrics_port), "--policy", "round_robin",
             "--worker-urls", f"http://127.0.0.1:{w0}"], router_port, "router")

    async def check(plan: Plan) -> tuple[bool, dict]:
        async with http_client() as client:
            deadline = time.monotonic() + 20
            while True:  # the router answers /health before it has added its workers
                ok, seen = await SimEngine().registered(client, plan)
                if seen.get("router_workers") or time.monotonic() > deadline:
                    return ok, seen
                await anyio.sleep(0.2)

    one = two_worker_plan([w0, w1], router_port)
    one.workers = one.workers[:1]
    assert anyio.run(check, one) == (True, {"router_workers": 1})
    # a plan with a second worker the router does not know: not registered yet, and it says what it saw
    assert anyio.run(check, two_worker_plan([w0, w1], router_port)) == (False, {"router_workers": 1})
