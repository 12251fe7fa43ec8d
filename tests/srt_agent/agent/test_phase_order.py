"""The whole agent in-process with the scripted launcher: the order of its phases, how a failure or
a stop signal in any of them ends in teardown, and what teardown leaves behind."""

from __future__ import annotations

import json
import os
import signal

import anyio
import pytest
from scripted_support import DYNAMO_JOB, ROUTER_JOB, events_of, planned, scripted_run, status_of

from srt_agent.agent.main import run_agent
from srt_agent.agent.scripted_launcher import Script, ScriptedLauncher

pytestmark = pytest.mark.usefixtures("scripted_env")


def phases(run_dir) -> list[tuple[str, str]]:
    return [(e["phase"], e["state"]) for e in events_of(run_dir, "phase")]


async def serve_until(launcher: ScriptedLauncher, run_dir, sig=signal.SIGTERM, before=lambda: None) -> int:
    """Run the agent (manual benchmark: serves until stopped) and send it `sig` once it serves
    (after calling `before`)."""
    async with anyio.create_task_group() as tg:
        async def stop_when_serving() -> None:
            with anyio.fail_after(20):
                while ("manual", "running") not in (phases(run_dir) if (run_dir / "events.jsonl").exists() else []):
                    await anyio.sleep(0.02)
            before()
            os.kill(os.getpid(), sig)  # the agent's own signal receiver takes it

        tg.start_soon(stop_when_serving)
        return await run_agent(run_dir, launcher)


@pytest.mark.parametrize("base,expect", [
    (ROUTER_JOB, ["start", "preflight", "workers", "endpoint", "health", "manual", "teardown"]),
    (DYNAMO_JOB, ["start", "preflight", "infra", "workers", "endpoint", "health", "manual", "teardown"]),
])
async def test_phases_run_in_order_and_a_stop_signal_tears_down_in_order(tmp_path, base, expect):
    run_dir = scripted_run(tmp_path, "6201", base)
    async with ScriptedLauncher() as launcher:
        code = await serve_until(launcher, run_dir)
    assert code == 143
    seen = phases(run_dir)
    assert [p for p, state in seen if state == "running"] == expect
    assert all((p, "done") in seen for p in expect if p != "manual")  # manual ends only by the stop
    status = status_of(run_dir)
    assert status["state"] == "cancelled" and status["failure"] is None
    assert "resume with srtctl apply --resume" in status["message"]
    kinds = {c["name"]: c["kind"] for c in status["components"]}
    started = [kinds[n] for _, n, _ in launcher.timeline("start")]
    stopped = [kinds[n] for _, n, _ in launcher.timeline("SIGTERM")]
    rank = ["nats", "etcd", "worker", "frontend", "router", "nginx"]
    assert started == sorted(started, key=rank.index)  # infra, workers, then the endpoint
    assert stopped == sorted(stopped, key=lambda k: -rank.index(k) if k != "frontend" else -4)
    assert {c["state"] for c in status["components"]} == {"stopped"}
    assert [e["signal"] for e in events_of(run_dir, "signal")] == ["SIGTERM"]


async def test_workers_start_only_after_infra_is_healthy(tmp_path):
    run_dir = scripted_run(tmp_path, "6202", DYNAMO_JOB)
    async with ScriptedLauncher({"etcd": Script(healthy_after=0.4)}) as launcher:
        code = await serve_until(launcher, run_dir, signal.SIGINT)
    assert code == 130
    [(etcd_healthy, _, _)] = [e for e in launcher.timeline("healthy") if e[1] == "etcd"]
    first_worker = min(t for t, name, what in launcher.timeline("start") if name.startswith(("prefill", "decode")))
    assert first_worker >= etcd_healthy
    assert status_of(run_dir)["state"] == "cancelled"


async def test_a_worker_dying_while_serving_fails_the_job_and_stops_everything_at_once(tmp_path):
    run_dir = scripted_run(tmp_path, "6203")
    script = Script(exit_at=0.6, exit_code=7, log=["serving", (0.5, "RuntimeError: NCCL timeout")])
    async with ScriptedLauncher({"decode-0": script}) as launcher:
        with anyio.fail_after(20):
            code = await run_agent(run_dir, launcher)
    assert code == 1
    status = status_of(run_dir)
    assert status["state"] == "failed"
    assert status["failure"]["component"] == "decode-0" and status["failure"]["exit_code"] == 7
    assert status["failure"]["log_tail"] == ["serving", "RuntimeError: NCCL timeout"]
    assert ("teardown", "done") in phases(run_dir)
    terms = [t for t, _, _ in launcher.timeline("SIGTERM")]
    assert len(terms) == 2 and max(terms) - min(terms) < 0.1  # prefill-0 and the router, together


async def test_a_worker_that_never_gets_healthy_times_out_naming_it(tmp_path):
    run_dir = scripted_run(tmp_path, "6204", health={"worker_timeout_s": 0.5})
    async with ScriptedLauncher({"prefill-0": Script(healthy_after=None)}) as launcher:
        with anyio.fail_after(20):
            code = await run_agent(run_dir, launcher)
    status = status_of(run_dir)
    assert code != 0 and status["state"] == "failed"
    assert "workers: 1 of 2 not ready after 0 s: prefill-0" in status["failure"]["message"]
    assert [p for p, s in phases(run_dir) if s == "running"] == ["start", "preflight", "workers", "teardown"]
    assert "router" not in {n for _, n, _ in launcher.timeline("start")}
    assert {n for _, n, _ in launcher.timeline("SIGTERM")} == {"prefill-0", "decode-0"}


async def test_a_process_that_cannot_start_fails_the_job_and_still_tears_down(tmp_path):
    run_dir = scripted_run(tmp_path, "6205")
    async with ScriptedLauncher({"router": Script(start_error="srun: error: Unable to create step")}) as launcher:
        with anyio.fail_after(20):
            code = await run_agent(run_dir, launcher)
    status = status_of(run_dir)
    assert code != 0 and status["state"] == "failed"
    assert status["failure"]["message"] == "cannot start router: srun: error: Unable to create step"
    assert {n for _, n, _ in launcher.timeline("exit")} == {"prefill-0", "decode-0"}


async def test_a_port_already_in_use_shows_as_the_process_exiting(tmp_path):
    run_dir = scripted_run(tmp_path, "6206")
    async with ScriptedLauncher() as probe:  # learn the router's planned address, then occupy it
        router = (await planned(tmp_path / "probe", "6206", probe, ROUTER_JOB)).plan.process("router")
    listener = await anyio.create_tcp_listener(local_host=router.address, local_port=router.port)
    try:
        async with ScriptedLauncher() as launcher:
            with anyio.fail_after(20):
                code = await run_agent(run_dir, launcher)
    finally:
        await listener.aclose()
    failure = status_of(run_dir)["failure"]
    assert code != 0 and failure["component"] == "router" and failure["exit_code"] == 1
    assert failure["log_tail"][0].startswith(f"cannot listen on {router.address}:{router.port}")


async def test_the_state_dir_of_etcd_and_nats_is_removed_at_teardown(tmp_path):
    run_dir = scripted_run(tmp_path, "6207", DYNAMO_JOB, cluster_changes={"node_local_dir": str(tmp_path / "local")})
    state = tmp_path / "local" / "srt-6207"

    def etcd_wrote_its_data() -> None:
        (state / "etcd").mkdir(parents=True)

    async with ScriptedLauncher() as launcher:
        await serve_until(launcher, run_dir, before=etcd_wrote_its_data)
    assert json.loads((run_dir / "plan.json").read_text())["state_dir"] == str(state)
    assert [e["path"] for e in events_of(run_dir, "state_removed")] == [str(state)] and not state.exists()
