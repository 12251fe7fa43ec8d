"""The supervisor with the scripted launcher: start, failure detection, tiered teardown."""

from __future__ import annotations

import anyio
import pytest
from scripted_support import planned

from srt_agent.agent.scripted_launcher import Script, ScriptedLauncher
from srt_agent.agent.supervisor import Supervisor
from srt_agent.errors import ComponentFailed, LaunchError

pytestmark = pytest.mark.usefixtures("scripted_env")


def supervisor(ctx, grace: float = 1.0) -> tuple[Supervisor, list[ComponentFailed]]:
    failures: list[ComponentFailed] = []
    return Supervisor(ctx.launcher, ctx.status, ctx.plan, ctx.run_dir, grace, failures.append), failures


async def start_all(sup: Supervisor, ctx, tg) -> None:
    for p in ctx.plan.processes:
        await sup.start(tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])


def comp(ctx, name: str) -> dict:
    return ctx.status.data["components"][name]


async def test_start_records_each_process_running_without_a_pid(tmp_path):
    async with ScriptedLauncher() as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5101", launcher)
        sup, failures = supervisor(ctx)
        await start_all(sup, ctx, tg)
        assert sup.order == [p.name for p in ctx.plan.processes]
        assert sup.alive() == sup.order
        nginx = comp(ctx, "nginx")
        assert nginx["state"] == "running" and nginx["kind"] == "nginx" and nginx["pid"] is None
        assert nginx["log"] == f"logs/{ctx.plan.process('nginx').log}"
        await sup.stop_all()
        tg.cancel_scope.cancel()
    assert failures == [] and sup.alive() == []
    assert {c["state"] for c in ctx.status.data["components"].values()} == {"stopped"}


async def test_a_supervisor_without_a_plan_refuses_to_start(tmp_path):
    async with ScriptedLauncher() as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5102", launcher)
        sup = Supervisor(launcher, ctx.status, None, ctx.run_dir, 1.0, lambda f: None)
        with pytest.raises(LaunchError, match="before the run was planned"):
            await sup.start(tg, ctx.plan.process("nats"), ctx.scripts["nats"], {})
        assert ctx.status.data["components"] == {} and launcher.handles == {}
        await sup.stop_all()  # nothing started: returns at once
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("code,why", [(3, "exited with code 3"), (0, "exited early with code 0")])
async def test_a_critical_exit_fails_the_job_with_its_log_tail(tmp_path, code, why):
    script = Script(exit_at=0.2, exit_code=code, log=["loading", (0.1, "CUDA error: out of memory")])
    async with ScriptedLauncher({"decode-1": script}) as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5103", launcher)
        sup, failures = supervisor(ctx)
        await start_all(sup, ctx, tg)
        with anyio.fail_after(3):
            while not failures:
                await anyio.sleep(0.01)
        await sup.stop_all(ordered=False)
        tg.cancel_scope.cancel()
    assert [(f.component, f.returncode) for f in failures] == [("decode-1", code)]
    failure = ctx.status.data["failure"]
    assert failure["message"] == f"decode-1 on {ctx.plan.process('decode-1').node} {why}"
    assert failure["log_tail"] == ["loading", "CUDA error: out of memory"]
    assert comp(ctx, "decode-1")["state"] == "failed" and comp(ctx, "decode-1")["exit_code"] == code
    assert comp(ctx, "decode-0")["state"] == "stopped"


async def test_secrets_are_redacted_from_the_log_tail(tmp_path):
    script = Script(exit_at=0.1, exit_code=1, log=["token=hf_s3cr3t_value rejected"])
    async with ScriptedLauncher({"prefill-0": script}) as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5104", launcher)
        sup, failures = supervisor(ctx)
        sup.secret_values = ["hf_s3cr3t_value"]
        await start_all(sup, ctx, tg)
        with anyio.fail_after(3):
            while not failures:
                await anyio.sleep(0.01)
        await sup.stop_all(ordered=False)
        tg.cancel_scope.cancel()
    assert "hf_s3cr3t_value" not in str(ctx.status.data["failure"])
    assert ctx.status.data["failure"]["log_tail"][0].startswith("token=")


async def test_a_non_critical_exit_is_recorded_but_fails_nothing(tmp_path):
    async with ScriptedLauncher({"frontend-1": Script(exit_at=0.1, exit_code=2)}) as launcher, \
            anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5105", launcher)
        front = ctx.plan.process("frontend-1").model_copy(update={"critical": False})
        sup, failures = supervisor(ctx)
        await sup.start(tg, front, ctx.scripts[front.name], {})
        with anyio.fail_after(3):
            await sup.handles["frontend-1"].wait()
        await anyio.sleep(0.05)
        await sup.stop_all()
        tg.cancel_scope.cancel()
    assert failures == [] and ctx.status.data["failure"] is None
    assert comp(ctx, "frontend-1")["state"] == "exited" and comp(ctx, "frontend-1")["exit_code"] == 2


async def test_only_the_first_critical_exit_counts(tmp_path):
    async with ScriptedLauncher({"decode-*": Script(exit_at=0.1, exit_code=9)}) as launcher, \
            anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5106", launcher)
        sup, failures = supervisor(ctx)
        await start_all(sup, ctx, tg)
        with anyio.fail_after(3):
            while comp(ctx, "decode-0").get("exit_code") is None or comp(ctx, "decode-1").get("exit_code") is None:
                await anyio.sleep(0.01)
        await sup.stop_all(ordered=False)
        tg.cancel_scope.cancel()
    assert len(failures) == 1 and ctx.status.data["failure"]["component"] == failures[0].component


async def test_teardown_goes_tier_by_tier_in_reverse_dependency_order(tmp_path):
    slow = Script(stop_after=0.1)  # each tier takes a moment to stop: the next one waits for it
    async with ScriptedLauncher(default=slow) as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5107", launcher)
        sup, _ = supervisor(ctx, grace=5.0)
        await start_all(sup, ctx, tg)
        await sup.stop_all()
        tg.cancel_scope.cancel()
    kinds = {p.name: p.kind for p in ctx.plan.processes}
    terms = launcher.timeline("SIGTERM")
    exits = {name: t for t, name, _ in launcher.timeline("exit")}
    order = [kinds[name] for _, name, _ in terms]
    assert order == sorted(order, key=["nginx", "frontend", "worker", "etcd", "nats"].index)
    assert set(order) == {"nginx", "frontend", "worker", "etcd", "nats"}
    for t, name, _ in terms:  # no SIGTERM before every process of the tier before it has exited
        earlier = [n for n in kinds if order.index(kinds[n]) < order.index(kinds[name])]
        assert all(exits[n] <= t for n in earlier), (name, t, {n: exits[n] for n in earlier})
    assert launcher.timeline("SIGKILL") == []


async def test_a_process_that_ignores_sigterm_is_killed_at_the_grace_deadline_and_awaited(tmp_path):
    grace = 0.6
    async with ScriptedLauncher({"etcd": Script(ignore_sigterm=True)}) as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5108", launcher)
        sup, _ = supervisor(ctx, grace=grace)
        await start_all(sup, ctx, tg)
        t0 = anyio.current_time()
        await sup.stop_all()
        took = anyio.current_time() - t0
        tg.cancel_scope.cancel()
    assert all(h.returncode is not None for h in sup.handles.values())  # every process awaited
    [(t_kill, name, _)] = launcher.timeline("SIGKILL")
    [(t_term, _, _)] = [e for e in launcher.timeline("SIGTERM") if e[1] == "etcd"]
    first_term = launcher.timeline("SIGTERM")[0][0]
    assert name == "etcd" and t_kill - first_term >= grace - 0.05 and t_term < t_kill
    assert sup.handles["etcd"].returncode == -9 and sup.handles["etcd"].signals == ["SIGTERM", "SIGKILL"]
    assert comp(ctx, "etcd")["killed_after_s"] == grace and "killed_after_s" not in comp(ctx, "nats")
    # NATS (the last tier) still got its SIGTERM, after the grace period and before any SIGKILL
    assert sup.handles["nats"].signals == ["SIGTERM"] and sup.handles["nats"].returncode == -15
    assert grace <= took < grace + 2.0


async def test_after_a_failure_every_process_gets_sigterm_at_once(tmp_path):
    async with ScriptedLauncher(default=Script(stop_after=0.2)) as launcher, anyio.create_task_group() as tg:
        ctx = await planned(tmp_path, "5109", launcher)
        sup, _ = supervisor(ctx, grace=3.0)
        await start_all(sup, ctx, tg)
        await sup.stop_all(ordered=False)
        tg.cancel_scope.cancel()
    times = [t for t, _, _ in launcher.timeline("SIGTERM")]
    assert len(times) == len(ctx.plan.processes) and max(times) - min(times) < 0.1
