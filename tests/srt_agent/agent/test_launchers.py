"""Launcher.run_once on this machine and through srun on the local cluster, and the scripted
launcher's own behaviour (the seam the other agent unit tests stand on)."""

from __future__ import annotations

import signal
import sys

import anyio
import httpx
import pytest
from scripted_support import ROUTER_JOB, planned

from srt_agent.agent.launchers import LocalLauncher, SrunLauncher
from srt_agent.agent.scripted_launcher import Script, ScriptedLauncher
from srt_agent.errors import LaunchError

pytestmark = pytest.mark.usefixtures("scripted_env")

REPORT = ["bash", "-c", 'echo "on $SLURMD_NODENAME"; echo oops >&2; exit 3']


async def test_local_run_once_returns_code_and_both_outputs():
    res = await LocalLauncher().run_once(REPORT, "local1")
    assert (res.returncode, res.output, res.argv) == (3, "on local1\noops\n", REPORT)


async def test_local_run_once_that_cannot_start_or_hangs_is_a_launch_error():
    with pytest.raises(LaunchError, match="cannot run `/no/such/engine --help` on local0"):
        await LocalLauncher().run_once(["/no/such/engine", "--help"], "local0")
    with pytest.raises(LaunchError, match=r"did not finish within 0 s"):
        await LocalLauncher().run_once([sys.executable, "-c", "import time; time.sleep(30)"], "local0", timeout=0.3)


@pytest.mark.cluster
async def test_srun_run_once_runs_on_the_named_node(local_cluster):
    node = local_cluster.nodes[-1]
    launcher = SrunLauncher(job_id="0", nodelist=",".join(local_cluster.nodes))
    with anyio.fail_after(60):
        res = await launcher.run_once(REPORT, node, name="srt-preflight")
    assert res.returncode == 3 and f"on {node}\n" in res.output and "oops" in res.output
    assert res.argv[0] == "srun" and f"--nodelist={node}" in res.argv and "--job-name=srt-preflight" in res.argv
    assert res.argv[-len(REPORT):] == REPORT


async def get(url: str) -> int:
    async with httpx.AsyncClient(trust_env=False) as client:
        try:
            return (await client.get(url)).status_code
        except httpx.ConnectError:
            return 0


async def test_a_scripted_process_serves_503_until_healthy_then_200_and_exits_on_time(tmp_path):
    script = Script(healthy_after=0.3, exit_at=1.5, exit_code=5, log=["first", (1.2, "second")])
    async with ScriptedLauncher({"decode-0": script}) as launcher:
        ctx = await planned(tmp_path, "9501", launcher, ROUTER_JOB)
        proc = ctx.plan.process("decode-0")
        handle = await launcher.start(ctx.plan, proc, ctx.scripts[proc.name], {}, ctx.run_dir)
        assert await get(proc.health_url) == 503
        await anyio.sleep(0.4)
        assert await get(proc.health_url) == 200
        assert await get(proc.health_url.replace("/health", "/nothing")) == 404
        log = ctx.run_dir / "logs" / proc.log
        assert log.read_text() == "first\n"
        with anyio.fail_after(3):
            assert await handle.wait() == 5
        assert log.read_text() == "first\nsecond\n"
        assert await get(proc.health_url) == 0  # nothing listens any more
    assert [what for _, _, what in launcher.timeline()] == ["start", "healthy", "exit 5"]
    assert handle.pid is None


async def test_sigterm_ends_a_process_after_its_stop_time_unless_it_ignores_it(tmp_path):
    scripts = {"prefill-0": Script(stop_after=0.3), "decode-0": Script(ignore_sigterm=True)}
    async with ScriptedLauncher(scripts) as launcher:
        ctx = await planned(tmp_path, "9502", launcher, ROUTER_JOB)
        graceful, stubborn = [await launcher.start(ctx.plan, ctx.plan.process(n), ctx.scripts[n], {}, ctx.run_dir)
                              for n in ("prefill-0", "decode-0")]
        t0 = anyio.current_time()
        await launcher.terminate([graceful, stubborn])
        assert graceful.stopping and stubborn.stopping
        assert await graceful.wait() == -signal.SIGTERM
        assert 0.25 <= anyio.current_time() - t0 < 2
        with anyio.move_on_after(0.3):
            await stubborn.wait()
        assert stubborn.returncode is None
        await launcher.stop(stubborn, grace=0.1)  # SIGTERM again (still ignored), then SIGKILL
        assert stubborn.returncode == -signal.SIGKILL and stubborn.signals == ["SIGTERM", "SIGTERM", "SIGKILL"]


async def test_scripts_are_chosen_by_name_then_pattern_then_kind(tmp_path):
    by_name, by_pattern, by_kind, default = Script(exit_code=1), Script(exit_code=2), Script(exit_code=3), Script()
    launcher = ScriptedLauncher({"worker": by_kind, "decode-*": by_pattern, "decode-0": by_name}, default=default)
    async with launcher:
        ctx = await planned(tmp_path, "9503", launcher, ROUTER_JOB,
                            resources={"decode_nodes": 2, "decode_workers": 2})
    chosen = {p.name: launcher.script_for(p) for p in ctx.plan.processes}
    assert chosen["decode-0"] is by_name and chosen["decode-1"] is by_pattern
    assert chosen["prefill-0"] is by_kind and chosen["router"] is default


async def test_start_outside_the_block_and_too_many_nodes_are_launch_errors(tmp_path):
    launcher = ScriptedLauncher(nodes=2)
    async with launcher:
        ctx = await planned(tmp_path, "9504", launcher, ROUTER_JOB)
        with pytest.raises(LaunchError, match="needs 3"):
            await launcher.discover_nodes(3)
    with pytest.raises(LaunchError, match="enter the ScriptedLauncher"):
        await launcher.start(ctx.plan, ctx.plan.process("router"), ctx.scripts["router"], {}, ctx.run_dir)
    res = await launcher.run_once(["engine", "--help"], "node0")
    assert res.returncode == 127 and "no run_once answer" in res.output
