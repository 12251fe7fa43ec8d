"""srt_agent.engines.sglang: real SGLang behind the router and behind Dynamo, as the plan runs it."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from engine_support import DISAGG, plan_of, resolved

from srt_agent.agent.preflight import engine_help_command
from srt_agent.agent.profiling_targets import profile_targets
from srt_agent.engines import engine_of
from srt_agent.engines.sglang import SglangDynamo, SglangRouter
from srt_agent.errors import ConfigErrors, ProfilingError

ROUTER = {"engine": "sglang", "use_sglang_router": True}
DYNAMO = {"engine": "sglang", "use_sglang_router": False}


def flags(section: dict, backend: dict = ROUTER) -> dict:
    return {**backend, "sglang_config": {"aggregated": section}}


@pytest.mark.parametrize("backend,module", [(ROUTER, "sglang.launch_server"), (DYNAMO, "dynamo.sglang")])
def test_worker_runs_its_module_with_metrics_on_and_user_flags_last(backend, module):
    plan = plan_of(resolved(flags({"mem-fraction-static": 0.8, "enable-dp-attention": True}, backend)))
    w = plan.process("agg-0")
    assert w.command[:3] == [sys.executable, "-m", module] and w.module == module
    assert w.command.count("--enable-metrics") == 1
    assert w.command[-3:] == ["--enable-dp-attention", "--mem-fraction-static", "0.8"]  # (yaml.safe_dump sorts)
    assert w.health_path == "/health"


@pytest.mark.parametrize("section,count", [({"enable-metrics": True}, 1), ({"enable_metrics": False}, 0),
                                           ({"--enable-metrics": True}, 1)])
def test_a_user_setting_of_enable_metrics_wins(section, count):
    for backend in (ROUTER, DYNAMO):
        cmd = plan_of(resolved(flags(section, backend))).process("agg-0").command
        assert cmd.count("--enable-metrics") == count, (backend, cmd)


def test_metrics_are_per_role():
    r = resolved({**ROUTER, "sglang_config": {"prefill": {"enable-metrics": False}}}, resources=DISAGG)
    plan = plan_of(r)
    assert "--enable-metrics" not in plan.process("prefill-0").command
    assert "--enable-metrics" in plan.process("decode-0").command


def test_router_worker_serves_http_itself():
    plan = plan_of(resolved(ROUTER, resources=DISAGG))
    assert type(engine_of(plan)) is SglangRouter and plan.endpoint.kind == "router"
    for w in plan.workers:
        leader = plan.process(w.processes[0])
        assert leader.port == w.http_port and "--port" in leader.command and leader.dynamo_version is None
        assert "DYN_SYSTEM_PORT" not in leader.env
    assert not plan.by_kind("nats") and not plan.frontends


def test_dynamo_worker_answers_health_on_its_system_server_and_installs_dynamo():
    plan = plan_of(resolved(DYNAMO, resources=DISAGG))
    assert type(engine_of(plan)) is SglangDynamo
    for w in plan.workers:
        leader = plan.process(w.processes[0])
        assert w.http_port is None and "--port" not in leader.command
        assert leader.env["DYN_SYSTEM_PORT"] == str(leader.port) and leader.dynamo_version == "0.7.0"
    assert all(f.dynamo_version == "0.7.0" and f.module == "dynamo.frontend" for f in plan.frontends)
    assert [p.name for p in plan.by_kind("nats") + plan.by_kind("etcd")] == ["nats", "etcd"]


def test_the_preflight_asks_the_module_for_its_help():
    for backend, module in ((ROUTER, "sglang.launch_server"), (DYNAMO, "dynamo.sglang")):
        plan = plan_of(resolved(backend, profiling="nsys"))
        assert engine_help_command(SimpleNamespace(plan=plan)) == [sys.executable, "-m", module, "--help"]


def test_flag_vocabulary_decides_the_submit_time_check():
    assert SglangRouter.flag_vocabulary == ("sglang",)
    assert SglangDynamo.flag_vocabulary == ("sglang", "dynamo-sglang")
    for backend, what in ((ROUTER, r"not an option of SGLang 0.5.5 \(version"),
                          (DYNAMO, "not an option of SGLang 0.5.5 + dynamo.sglang 0.7.0")):
        with pytest.raises(ConfigErrors, match=r"mem-fraction-statc.*" + what.replace("+", r"\+")):
            resolved({**backend, "sglang_version": "0.5.5",
                      "sglang_config": {"aggregated": {"mem-fraction-statc": 0.8}}})


def test_profiler_control_router_on_the_worker_dynamo_on_the_system_server(tmp_path):
    plan = plan_of(resolved(ROUTER, profiling="torch"))
    (t,) = profile_targets(plan, "torch", tmp_path)
    assert t.control_url == plan.workers[0].url and t.not_found_hint == ""
    plan = plan_of(resolved(DYNAMO, profiling="torch"))
    leader = plan.process("agg-0")
    (t,) = profile_targets(plan, "torch", tmp_path)
    assert t.control_url == f"http://127.0.0.1:{leader.port}/engine"
    assert "no SGLang profiling routes" in t.not_found_hint
    leader.port = None
    with pytest.raises(ProfilingError, match="agg-0: SGLang behind Dynamo .* no DYN_SYSTEM_PORT"):
        profile_targets(plan, "torch", tmp_path)


def test_the_plan_records_profile_outputs_instead_of_hiding_them_in_commands():
    torch = plan_of(resolved(ROUTER, profiling="torch"), log_dir="/runs/r").process("agg-0")
    assert torch.profile_dir == torch.env["SGLANG_TORCH_PROFILER_DIR"] == "/runs/r/profiles/agg"
    assert torch.nsys_output is None
    nsys = plan_of(resolved(DYNAMO, profiling="nsys", container=True), log_dir="/runs/r").process("agg-0")
    assert nsys.nsys_output == "/logs/profiles/nsys_agg_0_n0"
    assert nsys.command[nsys.command.index("-o") + 1] == nsys.nsys_output and nsys.profile_dir is None
    assert nsys.module == "dynamo.sglang" and nsys.python == "python3"
