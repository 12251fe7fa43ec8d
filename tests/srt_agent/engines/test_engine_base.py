"""srt_agent.engines.base: the worker arguments every engine shares, the defaults an engine inherits,
and the endpoints' registration answers."""

from __future__ import annotations

import sys

import pytest
from engine_support import DISAGG, plan_of, resolved

from srt_agent.engines.base import Engine, RouterEndpoint, WorkerArgs, WorkerLaunch, router_worker_count, user_set
from srt_agent.errors import ProfilingError
from srt_agent.plan import ProcessSpec
from srt_agent.yaml_source import parse_yaml


def args(role: str = "prefill", **kw) -> WorkerArgs:
    base = dict(r=resolved({"engine": "sglang"}, resources=DISAGG), role=role, python="py", model_path="/m",
                served="tiny", host="10.0.0.1", http_port=None, bootstrap=None, tp=4, nnodes=1, rank=0, dist=None,
                user_flags=[], nats_url=None, etcd_url=None, system_port=None, worker_index=0)
    return WorkerArgs(**{**base, **kw})


def test_mode_flags_per_role():
    assert args("agg").mode_flags() == []
    assert args("decode").mode_flags() == ["--disaggregation-mode", "decode"]
    assert args("prefill", bootstrap=9000).mode_flags() == ["--disaggregation-mode", "prefill",
                                                            "--disaggregation-bootstrap-port", "9000"]


def test_multi_node_flags_only_with_a_leader_address():
    assert args().multi_node_flags() == []
    assert args(dist="10.0.0.1:5000", nnodes=2, rank=1).multi_node_flags() == [
        "--dist-init-addr", "10.0.0.1:5000", "--nnodes", "2", "--node-rank", "1"]


def test_common_flags_and_dynamo_env():
    assert args().common_flags() == ["--model-path", "/m", "--served-model-name", "tiny", "--tp-size", "4"]
    assert args().dynamo_env() == {}  # no NATS/etcd: no Dynamo environment
    env = args(nats_url="nats://10.0.0.1:4222", etcd_url="http://10.0.0.1:2379", system_port=8081).dynamo_env()
    assert env["DYN_SYSTEM_PORT"] == "8081" and env["DYN_SYSTEM_HOST"] == "10.0.0.1"


@pytest.mark.parametrize("flags,set_", [({"enable-metrics": True}, True), ({"enable_metrics": False}, True),
                                        ({"--enable-metrics": True}, True), ({"enable-metrics-for-all": 1}, False),
                                        ({}, False)])
def test_user_set_matches_every_spelling_and_nothing_else(flags, set_):
    assert user_set(flags, "enable-metrics") is set_


@pytest.mark.parametrize("data,n", [
    ([{"url": "a"}, {"url": "b"}], 2),
    ({"workers": [1, 2, 3]}, 3),
    ({"urls": ["a"]}, 1),
    ({"prefill": ["a"], "decode": ["b", "c"]}, 3),
    ({"prefill_urls": ["a"], "stats": {"total_workers": 4}}, 4),
    ({"stats": "x"}, 0),
    ("nonsense", 0),
])
def test_router_worker_count_reads_every_known_shape(data, n):
    assert router_worker_count(data) == n


class NewEngine(RouterEndpoint):
    """What a new engine module needs at least: its names and its worker command."""

    name = "new"
    engine = "new"

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        return WorkerLaunch([a.python, "-m", "new.server", "--port", str(a.http_port)], {}, a.http_port, "/health",
                            "new.server")


def test_a_new_engine_inherits_help_profiling_and_endpoint_defaults():
    eng = NewEngine()
    launch = eng.worker_command(args(http_port=8000))
    spec = ProcessSpec(name="agg-0", kind="worker", node="n", address="a", command=launch.command,
                       python="py", module=launch.module)
    assert eng.help_command(spec) == ["py", "-m", "new.server", "--help"]
    assert eng.help_command(spec.model_copy(update={"module": None})) is None
    assert eng.worker_http_port and not eng.worker_system_port and eng.flag_vocabulary == ()
    plan = plan_of(resolved({"engine": "sim", "use_sglang_router": True}))
    assert eng.profile_control_url(plan, plan.workers[0]) == plan.workers[0].url
    plan.workers[0].http_port = None
    with pytest.raises(ProfilingError, match="agg-0: the worker has no HTTP port"):
        eng.profile_control_url(plan, plan.workers[0])
    err = eng.endpoint_error(parse_yaml("backend:\n  use_sglang_router: false\n", "job.yaml"))
    assert (err.key, err.line, err.hint) == ("backend.use_sglang_router", 2, "set use_sglang_router: true")
    assert "does not run behind Dynamo frontends" in err.message


def test_the_base_engine_has_no_worker_command():
    with pytest.raises(NotImplementedError):
        Engine().worker_command(args())


def test_help_command_ignores_an_nsys_wrapper():
    r = resolved({"engine": "sim", "use_sglang_router": True}, profiling="nsys")
    worker = plan_of(r).process("agg-0")
    assert worker.command[:2] == ["nsys", "profile"]
    assert RouterEndpoint.help_command(NewEngine(), worker) == [sys.executable, "-m", "srt_agent.sim", "--help"]
