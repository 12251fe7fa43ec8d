"""Readiness checks against scripted processes serving real HTTP on their planned ports."""

from __future__ import annotations

import time

import anyio
import pytest
from scripted_support import DYNAMO_JOB, ROUTER_JOB, planned

from srt_agent.agent import health
from srt_agent.agent.health import smoke_request, wait_processes_healthy, wait_registered
from srt_agent.agent.scripted_launcher import Script, ScriptedLauncher
from srt_agent.errors import HealthTimeout

pytestmark = pytest.mark.usefixtures("scripted_env")


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setattr(health, "POLL_S", 0.05)


async def start(launcher, ctx, names) -> None:
    for name in names:
        await launcher.start(ctx.plan, ctx.plan.process(name), ctx.scripts[name], {}, ctx.run_dir)


async def test_waits_until_every_process_answers_200_and_marks_each_ready(tmp_path):
    scripts = {"decode-0": Script(healthy_after=0.3), "decode-1": Script(healthy_after=0.6)}
    async with ScriptedLauncher(scripts) as launcher:
        ctx = await planned(tmp_path, "7301", launcher)
        workers = ctx.plan.by_kind("worker")
        await start(launcher, ctx, [w.name for w in workers])
        t0 = time.monotonic()
        await wait_processes_healthy(workers, ctx.status, deadline_s=5, what="workers")
        took = time.monotonic() - t0
    assert 0.55 <= took < 3
    comps = ctx.status.data["components"]
    assert all(comps[w.name]["health"] == "healthy" and comps[w.name]["state"] == "ready" for w in workers)
    assert ctx.status.data["message"] == f"workers: {len(workers)} of {len(workers)} ready"


async def test_a_deadline_names_the_processes_still_not_ready(tmp_path):
    async with ScriptedLauncher({"decode-1": Script(healthy_after=None)}) as launcher:
        ctx = await planned(tmp_path, "7302", launcher)
        workers = ctx.plan.by_kind("worker")
        await start(launcher, ctx, [w.name for w in workers])
        with pytest.raises(HealthTimeout, match=r"workers: 1 of 3 not ready after 0 s: decode-1 \(raise"):
            await wait_processes_healthy(workers, ctx.status, deadline_s=0.3, what="workers")
    assert ctx.status.data["message"] == "workers: 2 of 3 ready"
    assert "health" not in ctx.status.data["components"].get("decode-1", {})


async def test_registration_with_the_router_waits_for_every_worker(tmp_path):
    async with ScriptedLauncher() as launcher:
        ctx = await planned(tmp_path, "7303", launcher, ROUTER_JOB)
        await start(launcher, ctx, ["router"])
        with anyio.fail_after(5):
            seen = await wait_registered(ctx.plan, ctx.status, deadline_s=5)
    assert seen == {"router_workers": len(ctx.plan.workers)}


async def test_a_router_that_lists_too_few_workers_times_out_saying_what_it_saw(tmp_path):
    one = Script(routes={"/workers": {"workers": ["http://127.0.0.1:1"]}})
    async with ScriptedLauncher({"router": one}) as launcher:
        ctx = await planned(tmp_path, "7304", launcher, ROUTER_JOB)
        await start(launcher, ctx, ["router"])
        with pytest.raises(HealthTimeout, match=r"not registered with the router .*saw \{'router_workers': 1\}"):
            await wait_registered(ctx.plan, ctx.status, deadline_s=0.3)


async def test_registration_with_dynamo_frontends_counts_prefill_and_decode_instances(tmp_path):
    async with ScriptedLauncher() as launcher:
        ctx = await planned(tmp_path, "7305", launcher, DYNAMO_JOB)
        await start(launcher, ctx, [f.name for f in ctx.plan.frontends])
        seen = await wait_registered(ctx.plan, ctx.status, deadline_s=5)
    assert seen == {f.name: {"prefill": 1, "decode": 2} for f in ctx.plan.frontends}


async def test_a_frontend_missing_a_decode_worker_keeps_registration_waiting(tmp_path):
    partial = {"status": "healthy", "instances": [
        {"component": "prefill", "endpoint": "generate", "instance_id": 1},
        {"component": "backend", "endpoint": "generate", "instance_id": 2}]}
    async with ScriptedLauncher({"frontend-1": Script(routes={"/health": partial})}) as launcher:
        ctx = await planned(tmp_path, "7306", launcher, DYNAMO_JOB)
        await start(launcher, ctx, [f.name for f in ctx.plan.frontends])
        with pytest.raises(HealthTimeout, match=r"expected \{'prefill': 1, 'decode': 2\}"):
            await wait_registered(ctx.plan, ctx.status, deadline_s=0.3)
    assert '"frontend-1": {"decode": 1, "prefill": 1}' in ctx.status.data["message"]


async def test_the_smoke_request_returns_the_generated_tokens(tmp_path):
    async with ScriptedLauncher() as launcher:
        ctx = await planned(tmp_path, "7307", launcher, ROUTER_JOB)
        await start(launcher, ctx, ["router"])
        res = await smoke_request(ctx.plan, deadline_s=5)
    assert res == {"completion_tokens": 2, "text": " Paris."}


async def test_a_smoke_request_without_tokens_fails_with_the_answer(tmp_path):
    empty = {"choices": [{"text": ""}], "usage": {"completion_tokens": 0}}
    async with ScriptedLauncher({"router": Script(routes={"/v1/completions": empty})}) as launcher:
        ctx = await planned(tmp_path, "7308", launcher, ROUTER_JOB)
        await start(launcher, ctx, ["router"])
        with pytest.raises(HealthTimeout, match="smoke request through .* failed: 0 tokens returned"):
            await smoke_request(ctx.plan, deadline_s=0.5)
