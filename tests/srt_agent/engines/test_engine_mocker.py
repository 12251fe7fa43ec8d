"""srt_agent.engines.mocker: Dynamo's mocker as the plan runs it, what it refuses, and the Dynamo
endpoint's registration check when a frontend does not answer."""

from __future__ import annotations

from types import SimpleNamespace

import anyio
import pytest
from engine_support import DISAGG, plan_of, resolved

from srt_agent.agent.health import http_client
from srt_agent.agent.preflight import engine_help_command
from srt_agent.agent.profiling_targets import profile_targets
from srt_agent.engines import engine_of
from srt_agent.engines.mocker import MockerEngine
from srt_agent.errors import ProfilingError

MOCKER = {"engine": "dynamo-mocker", "mocker": {"speedup_ratio": 10, "prefill": {"num-gpu-blocks": 64,
                                                                                 "model-path": "/x"}}}


def test_workers_and_frontends_run_on_the_venv_python_offline_on_the_host():
    plan = plan_of(resolved(MOCKER, resources=DISAGG, container=True, dynamo_venv="/venv/dyn"))
    assert type(engine_of(plan)) is MockerEngine
    prefill = plan.process("prefill-0")
    assert prefill.command[:3] == ["/venv/dyn/bin/python", "-m", "dynamo.mocker"]
    assert prefill.command[-2:] == ["--num-gpu-blocks", "64"] and "/x" not in prefill.command  # model-path is owned
    assert prefill.command[prefill.command.index("--speedup-ratio") + 1] == "10.0"
    assert prefill.env["HF_HUB_OFFLINE"] == "1" and prefill.env["DYN_SYSTEM_PORT"] == str(prefill.port)
    assert prefill.module is None and prefill.dynamo_version is None
    for f in plan.frontends:
        assert not f.container and f.python == "/venv/dyn/bin/python" and f.env["HF_HUB_OFFLINE"] == "1"
        assert f.dynamo_version is None


def test_without_a_venv_the_worker_python_is_used():
    plan = plan_of(resolved(MOCKER))
    assert plan.process("agg-0").command[0] == plan.process("agg-0").python == plan.frontends[0].python


def test_no_help_command_no_flag_vocabulary():
    plan = plan_of(resolved(MOCKER))
    assert engine_help_command(SimpleNamespace(plan=plan)) is None
    assert MockerEngine.flag_vocabulary == ()


def test_a_plan_of_the_mocker_cannot_be_profiled(tmp_path):
    plan = plan_of(resolved(MOCKER))
    with pytest.raises(ProfilingError, match="agg-0: engine dynamo-mocker has no profiler"):
        profile_targets(plan, "torch", tmp_path)


def test_not_registered_while_a_frontend_does_not_answer(free_port):
    plan = plan_of(resolved(MOCKER))
    plan.frontends[0].port = free_port  # nothing listens there

    async def check():
        async with http_client(timeout=2) as client:
            return await MockerEngine().registered(client, plan)

    assert anyio.run(check) == (False, {"frontend-0": {}})
