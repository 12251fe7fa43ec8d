"""srt-slurm's router-experiment keys (srt_agent/incumbent/experimental.py): the event plane is
converted (DYN_EVENT_PLANE on every worker and frontend, as srt-slurm sets it); Dynamo sidecars,
policy catalogs and the experimental Rust sgl-router built from source are refused, each naming
what srt-slurm runs there."""

from __future__ import annotations

import copy

import pytest
import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import resolve_job
from srt_agent.yaml_source import parse_yaml

from .test_convert import BASE

CLUSTER = ClusterConfig(model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})


def recipe(**sections) -> dict:
    data = copy.deepcopy(BASE)
    for k, v in sections.items():
        data[k] = v
    return data


def convert(data):
    return convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"))


def refused(data) -> tuple[str, list[ConfigError]]:
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as exc:
        convert_document(parse_yaml(text, "recipe.yaml"))
    return text, (exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value])


def line_of(text: str, err: ConfigError) -> str:
    return text.splitlines()[err.line - 1].strip()


@pytest.mark.parametrize("plane", ["zmq", "nats"])
def test_the_event_plane_reaches_every_worker_and_frontend(plane):
    conv = convert(recipe(dynamo={"version": "1.1.0", "event_plane": plane, "request_plane": "tcp"}))
    b = conv.data["backend"]
    for key in ("prefill_environment", "decode_environment", "frontend_environment"):
        assert b[key]["DYN_EVENT_PLANE"] == plane and b[key]["DYN_REQUEST_PLANE"] == "tcp"
    # and in the plan: the environment of each worker process and each Dynamo frontend
    resolved = resolve_job(conv.document(), CLUSTER)
    nodes = [NodeInfo(name=f"gpu-{i}", address=f"10.0.0.{i + 1}") for i in range(resolved.total_nodes)]
    plan = make_plan(resolved, PlanInputs(job_id="1", nodes=nodes, log_dir="/logs/1", srtctl_root="/opt/srt",
                                          host_python="/venv/bin/python"))
    workers, frontends = plan.by_kind("worker"), plan.frontends
    assert workers and frontends
    assert {p.env.get("DYN_EVENT_PLANE") for p in workers + frontends} == {plane}


@pytest.mark.parametrize("env_first", [True, False])
def test_the_recipes_own_environment_wins_over_the_event_plane(env_first):
    sections = [("environment", {"DYN_EVENT_PLANE": "nats"}), ("dynamo", {"event_plane": "zmq"})]
    data = copy.deepcopy(BASE)
    for k, v in (sections if env_first else sections[::-1]):
        data[k] = v
    b = convert(data).data["backend"]
    assert b["decode_environment"]["DYN_EVENT_PLANE"] == "nats" and b["frontend_environment"]["DYN_EVENT_PLANE"] == "nats"


def test_an_unknown_event_plane_is_refused_with_its_line():
    text, (err,) = refused(recipe(dynamo={"event_plane": "kafka"}))
    assert err.key == "dynamo.event_plane" and line_of(text, err) == "event_plane: kafka"
    assert "zmq, nats" in err.message


def test_sidecars_are_refused_naming_what_srt_slurm_runs_and_false_is_accepted():
    text, (err,) = refused(recipe(dynamo={"hash": "4dca162", "event_plane": "zmq", "sidecar": True}))
    assert err.key == "dynamo.sidecar" and line_of(text, err) == "sidecar: true"
    assert "python3 -m dynamo.sglang.sidecar" in err.message and "--grpc-port" in err.message
    assert "remove dynamo.sidecar" in err.hint
    conv = convert(recipe(dynamo={"version": "1.1.0", "sidecar": False}))
    assert "sidecar" not in yaml.safe_dump(conv.data)


def test_a_policy_catalog_is_refused_once_at_its_section():
    catalog = {"git": "https://example.invalid/policies", "rev": "abc", "crate_subdir": "crates/p",
               "package": "p", "config": "p.yaml"}
    text, (err,) = refused(recipe(dynamo={"version": "1.1.0", "policy_catalog": catalog}))
    assert err.key == "dynamo.policy_catalog" and line_of(text, err) == "policy_catalog:"
    assert "custom-policy cargo feature" in err.message


def test_the_experimental_sgl_router_and_its_source_are_refused():
    front = {"type": "sgl-router", "enable_multiple_frontends": False, "source": "/src/sglang/experimental/sgl-router",
             "args": {"policy": "cache_aware_zmq"}}
    text, errors = refused(recipe(frontend=front, resources={**BASE["resources"]}))
    assert [e.key for e in errors] == ["frontend.type", "frontend.source"]
    assert line_of(text, errors[0]) == "type: sgl-router" and line_of(text, errors[1]).startswith("source: ")
    assert "experimental Rust router" in errors[0].message and "sglang_router" in errors[0].message
    assert "frontend.type: sglang" in errors[0].hint
    _, (err,) = refused(recipe(frontend={"type": "dynamo", "binary": "/opt/sgl-router"}))
    assert err.key == "frontend.binary"


@pytest.mark.parametrize("kind,router", [("sglang", True), ("sglang-router", True), ("dynamo", False)])
def test_the_other_frontend_types_convert_as_before(kind, router):
    assert convert(recipe(frontend={"type": kind})).data["backend"]["use_sglang_router"] is router
    _, (err,) = refused(recipe(frontend={"type": "vllm-router"}))
    assert err.key == "frontend.type" and "has no equivalent" in err.message
