"""Preflight through the launcher's run_once: the engine's `--help` is asked on the head node (in the
worker's container when it has one) and every sglang_config flag must be in it."""

from __future__ import annotations

import pytest
from scripted_support import DYNAMO_JOB, ROUTER_JOB, planned

from srt_agent.agent.launchers import OnceResult
from srt_agent.agent.preflight import check_engine_flags
from srt_agent.agent.scripted_launcher import ScriptedLauncher
from srt_agent.errors import ConfigErrors, LaunchError

pytestmark = pytest.mark.usefixtures("scripted_env")

HELP = """usage: launch_server [-h] --model-path MODEL_PATH [--mem-fraction-static MEM_FRACTION_STATIC]
  --tensor-parallel-size TP, --tp-size TP
  --chunked-prefill-size CHUNKED_PREFILL_SIZE
"""


def flags(prefill: dict, decode: dict | None = None) -> dict:
    return {"backend": {"sglang_config": {"prefill": prefill, "decode": decode or {}}}}


async def test_known_flags_pass_and_the_help_is_kept(tmp_path):
    async with ScriptedLauncher(once=lambda cmd, node: HELP) as launcher:
        ctx = await planned(tmp_path, "8401", launcher, ROUTER_JOB,
                            **flags({"mem-fraction-static": 0.8}, {"chunked-prefill-size": 4096}))
        await check_engine_flags(ctx)
    [(cmd, node, image)] = launcher.once_calls
    worker = ctx.plan.by_kind("worker")[0]
    m = worker.command.index("-m")
    assert cmd == [*worker.command[:m + 2], "--help"] and node == ctx.plan.head_node and image is None
    assert (ctx.run_dir / "logs" / "engine-help.txt").read_text() == HELP


async def test_an_unknown_flag_is_a_config_error_with_a_suggestion(tmp_path):
    async with ScriptedLauncher(once=lambda cmd, node: HELP) as launcher:
        ctx = await planned(tmp_path, "8402", launcher, ROUTER_JOB,
                            **flags({"mem-fraction-statc": 0.8}, {"chunked-prefil-size": 1}))
        with pytest.raises(ConfigErrors) as info:
            await check_engine_flags(ctx)
    text = str(info.value)
    assert "backend.sglang_config.prefill.mem-fraction-statc" in text and "did you mean 'mem-fraction-static'" in text
    assert "backend.sglang_config.decode.chunked-prefil-size" in text and "'chunked-prefill-size'" in text


async def test_a_failing_help_command_is_a_launch_error_with_its_output(tmp_path):
    def broken(cmd, node):
        return OnceResult(1, "ModuleNotFoundError: No module named 'sglang'", ["srun", *cmd])

    async with ScriptedLauncher(once=broken) as launcher:
        ctx = await planned(tmp_path, "8403", launcher, ROUTER_JOB, **flags({"mem-fraction-static": 0.8}))
        with pytest.raises(LaunchError, match=r"preflight: `srun .*--help` failed \(exit 1\): ModuleNotFound"):
            await check_engine_flags(ctx)


async def test_no_flags_or_the_mocker_ask_nothing(tmp_path):
    async with ScriptedLauncher(once=lambda cmd, node: HELP) as launcher:
        ctx = await planned(tmp_path, "8404", launcher, ROUTER_JOB)
        await check_engine_flags(ctx)
        mocker = await planned(tmp_path / "m", "8405", launcher, DYNAMO_JOB, **flags({"mem-fraction-static": 0.8}))
        await check_engine_flags(mocker)
    assert launcher.once_calls == []


async def test_a_containerised_worker_is_asked_inside_its_image(tmp_path):
    async with ScriptedLauncher(once=lambda cmd, node: HELP) as launcher:
        ctx = await planned(tmp_path, "8406", launcher, ROUTER_JOB, **flags({"mem-fraction-static": 0.8}))
        worker = ctx.plan.by_kind("worker")[0]
        ctx.plan = ctx.plan.model_copy(update={
            "container_image": "/images/sglang.sqsh",
            "processes": [p.model_copy(update={"container": p.name == worker.name}) for p in ctx.plan.processes]})
        await check_engine_flags(ctx)
    assert launcher.once_calls[0][2] == "/images/sglang.sqsh"
