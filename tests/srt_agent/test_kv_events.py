"""backend.kv_events_config: SGLang's --kv-events-config on the workers of the enabled roles, each
worker node with its own port (one reserved per data-parallel rank); bad settings refused."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.job_config import JobConfig
from srt_agent.kv_events import kv_events_args, role_config
from srt_agent.resolved import resolve_job
from srt_agent.yaml_source import parse_yaml


def test_roles_and_defaults_as_srt_slurm_reads_them():
    assert role_config(True, "prefill") == role_config(True, "decode") == {"publisher": "zmq", "topic": "kv-events"}
    assert role_config(True, "agg") is None
    assert role_config({"aggregated": {"topic": "t"}}, "agg") == {"publisher": "zmq", "topic": "t"}
    assert role_config({"decode": True}, "prefill") is None
    ports = iter(range(20000, 20010))
    args = kv_events_args({"decode": True}, "decode", lambda: next(ports), dp=4)
    assert args[0] == "--kv-events-config" and json.loads(args[1])["endpoint"] == "tcp://*:20000"
    assert next(ports) == 20004  # four ranks, four ports


@pytest.mark.parametrize("value,needle", [
    ({"agg": True}, "not a role"), ({"decode": {"endpoint": "tcp://*:1"}}, "set by srtctl"),
    ({"decode": "yes"}, "must be true"), ({"decode": {"topic": [1]}}, "string, number"), (3, "is true, or a mapping"),
])
def test_bad_settings_are_refused(value, needle):
    with pytest.raises(ValidationError, match=needle):
        JobConfig.model_validate({"name": "t", "model": {"path": "/m"}, "resources": {"agg_nodes": 1, "agg_workers": 1},
                                  "backend": {"kv_events_config": value}})


def test_not_twice_and_not_for_the_mocker():
    base = {"name": "t", "model": {"path": "/m"}, "resources": {"agg_nodes": 1, "agg_workers": 1}}
    with pytest.raises(ValidationError, match="keep one"):
        JobConfig.model_validate({**base, "backend": {"kv_events_config": True, "sglang_config": {
            "aggregated": {"kv-events-config": "{}"}}}})
    with pytest.raises(ValidationError, match="mocker"):
        JobConfig.model_validate({**base, "backend": {"engine": "dynamo-mocker", "kv_events_config": True}})


def test_dry_run_gives_every_worker_node_its_own_port(dry_run_variant):
    def edit(job):
        job["backend"]["kv_events_config"] = {"prefill": True, "decode": {"topic": "dec"}}
        job["backend"]["sglang_config"]["decode"]["data-parallel-size"] = 2

    out = dry_run_variant(edit)
    plan = json.loads((out / "plan.json").read_text())
    seen = {}
    for p in plan["processes"]:
        cmd = p["command"]
        if p["kind"] != "worker":
            assert "--kv-events-config" not in cmd
            continue
        cfg = json.loads(cmd[cmd.index("--kv-events-config") + 1])
        assert cfg["publisher"] == "zmq" and cfg["topic"] == ("dec" if p["role"] == "decode" else "kv-events")
        port = int(cfg["endpoint"].rsplit(":", 1)[1])
        other = [q for q in plan["processes"] if q["address"] == p["address"]]
        used = {q.get("port") for q in other}
        assert port not in used, (p["name"], port)  # not a health/HTTP port of the same address
        seen[p["name"]] = (p["address"], port)
    assert len(seen) == 3  # prefill-0, decode-0-r0, decode-0-r1
    by_address: dict[str, list[int]] = {}
    for addr, port in seen.values():
        by_address.setdefault(addr, []).append(port)
    assert all(len(set(v)) == len(v) for v in by_address.values())


@pytest.mark.parametrize("kv, agg, needle, line", [
    ("true", True, "prefill and decode workers only, and this job is aggregated", 7),
    ("{prefill: true}", True, "kv_events_config.prefill is set but this is an aggregated job", 7),
    ("{aggregated: {topic: t}}", False, "kv_events_config.aggregated is set but this is a disaggregated job", 7),
])
def test_a_setting_that_reaches_no_worker_is_refused_with_its_line(kv, agg, needle, line):
    resources = ("  agg_nodes: 1\n  agg_workers: 1\n" if agg else
                 "  prefill_nodes: 1\n  prefill_workers: 1\n  decode_nodes: 1\n  decode_workers: 1\n")
    text = f"name: t\nmodel:\n  path: /m\n  container: /c.sqsh\nbackend:\n  sglang_config: {{}}\n  kv_events_config: {kv}\nresources:\n{resources}"
    with pytest.raises((ConfigError, ConfigErrors)) as e:
        resolve_job(parse_yaml(text, "job.yaml"), ClusterConfig())
    assert needle in str(e.value) and f"job.yaml:{line}" in str(e.value), str(e.value)


def test_true_on_a_disaggregated_job_and_the_right_role_on_an_aggregated_one_pass():
    for kv, resources in (("true", "  prefill_nodes: 1\n  prefill_workers: 1\n  decode_nodes: 1\n  decode_workers: 1\n"),
                          ("{aggregated: true}", "  agg_nodes: 1\n  agg_workers: 1\n")):
        text = f"name: t\nmodel:\n  path: /m\n  container: /c.sqsh\nbackend:\n  kv_events_config: {kv}\nresources:\n{resources}"
        assert resolve_job(parse_yaml(text, "job.yaml"), ClusterConfig()).job.backend.kv_events_config
