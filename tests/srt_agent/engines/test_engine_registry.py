"""srt_agent.engines: which engine object a job and a plan get, and what the chosen engine refuses."""

from __future__ import annotations

import pytest
from engine_support import DISAGG, plan_of, resolved

from srt_agent.engines import ENGINES, engine_for, engine_named, engine_of
from srt_agent.engines.mocker import MockerEngine
from srt_agent.engines.sglang import SglangDynamo, SglangRouter
from srt_agent.engines.sim import SimEngine
from srt_agent.errors import ConfigErrors
from srt_agent.job_config import JobConfig


@pytest.mark.parametrize("backend,cls", [
    ({"engine": "sglang"}, SglangDynamo),
    ({"engine": "sglang", "use_sglang_router": True}, SglangRouter),
    ({"engine": "sim", "use_sglang_router": True}, SimEngine),
    ({"engine": "dynamo-mocker"}, MockerEngine),
])
def test_job_and_its_plan_get_the_same_engine(backend, cls):
    r = resolved(backend, resources=DISAGG)
    assert type(engine_for(r.job.backend)) is cls
    assert type(engine_of(plan_of(r))) is cls


def test_every_engine_has_its_own_name_and_place():
    assert len({e.name for e in ENGINES}) == len(ENGINES)
    assert len({(e.engine, e.behind_router) for e in ENGINES}) == len(ENGINES)
    # every backend.engine choice of the job model has at least one engine object
    choices = set(JobConfig.model_fields["backend"].annotation.model_fields["engine"].annotation.__args__)
    assert choices == {e.engine for e in ENGINES}


def test_combinations_without_an_engine_object():
    assert engine_named("sim", False) is None and engine_named("dynamo-mocker", True) is None
    assert engine_named("vllm", True) is None


@pytest.mark.parametrize("backend,profiling,errors", [
    ({"engine": "sim", "use_sglang_router": False}, "none",
     ["backend.engine: the simulated engine speaks SGLang's HTTP API and runs behind the sglang router"]),
    ({"engine": "dynamo-mocker", "use_sglang_router": True}, "none",
     ["backend.use_sglang_router: the dynamo-mocker engine only runs behind Dynamo frontends"]),
    ({"engine": "dynamo-mocker"}, "torch", ["profiling.type: Dynamo's mocker has no profiler"]),
    ({"engine": "dynamo-mocker", "use_sglang_router": True}, "nsys",
     ["profiling.type: Dynamo's mocker has no profiler",
      "backend.use_sglang_router: the dynamo-mocker engine only runs behind Dynamo frontends"]),
])
def test_the_engine_refuses_what_it_cannot_do_in_order(backend, profiling, errors):
    with pytest.raises(ConfigErrors) as err:
        resolved(backend, profiling=profiling)
    got = [f"{e.key}: {e.message}" for e in err.value.errors]
    assert got == errors


def test_an_unknown_engine_name_says_which_exist():
    from srt_agent.engines import _any_named

    with pytest.raises(KeyError, match="dynamo-mocker, sglang, sim"):
        _any_named("vllm")
