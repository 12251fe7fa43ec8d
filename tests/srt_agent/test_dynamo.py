"""Pure Dynamo helpers: environment, commands, /health parsing (payloads recorded from ai-dynamo 1.6.1)."""

from __future__ import annotations

import json

import pytest

from srt_agent.dynamo import (
    FrontendHealth,
    component_for,
    dynamo_env,
    frontend_command,
    mocker_command,
    parse_frontend_health,
)
from srt_agent.errors import ConfigError, PlanError

# GET /health of a frontend with one prefill and one decode mocker registered (namespace ns1).
RECORDED_HEALTH = (
    '{"status":"healthy","endpoints":["dyn://ns1.backend.generate","dyn://ns1.prefill.generate",'
    '"dyn://ns1.prefill.worker_kv_query_source_24c019198d3b"],"instances":[{"component":"backend",'
    '"endpoint":"generate","namespace":"ns1","instance_id":8270757518437444462,"transport":{"tcp":'
    '"127.0.0.1:35299/72c7a22485daeb6e/ns1/backend/generate"},"device_type":"cuda","request_plane_codec":'
    '"msgpack"},{"component":"prefill","endpoint":"generate","namespace":"ns1","instance_id":'
    '8270757518437444470,"transport":{"tcp":"127.0.0.1:41591/72c7a22485daeb76/ns1/prefill/generate"},'
    '"device_type":"cuda","request_plane_codec":"msgpack"},{"component":"prefill","endpoint":'
    '"worker_kv_query_source_24c019198d3b","namespace":"ns1","instance_id":8270757518437444470,"transport":'
    '{"tcp":"127.0.0.1:41591/72c7a22485daeb76/ns1/prefill/worker_kv_query_source_24c019198d3b"},'
    '"device_type":"cuda","request_plane_codec":"msgpack"}]}'
)
# GET /health of a frontend that has discovered nothing yet.
RECORDED_EMPTY_HEALTH = '{"status":"healthy","endpoints":[],"instances":[]}'

HOST_VARS = ("DYN_TCP_RPC_HOST", "DYN_EVENT_PLANE_HOST", "DYN_TCP_RESPONSE_STREAM_HOST", "DYN_SYSTEM_HOST",
             "DYN_HTTP_RPC_HOST")


def test_env_binds_and_advertises_the_given_host():
    env = dynamo_env("nats://10.1.2.3:4222", "http://10.1.2.3:2379", 12345, host="10.1.2.9")
    for var in HOST_VARS:
        assert env[var] == "10.1.2.9", var
    assert env["NATS_SERVER"] == "nats://10.1.2.3:4222"
    assert env["ETCD_ENDPOINTS"] == "http://10.1.2.3:2379"
    assert env["DYN_SYSTEM_PORT"] == "12345"
    assert env["DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS"] == '["generate"]'
    assert env["DYN_EVENT_PLANE"] == "nats"  # the zmq event plane binds 0.0.0.0
    assert env["DYN_DISCOVERY_BACKEND"] == "etcd" and env["DYN_REQUEST_PLANE"] == "tcp"
    assert env["DYN_SDK_DISABLE_ANSI_LOGGING"] == "1"
    assert all(isinstance(v, str) for v in env.values())


def test_env_defaults_to_loopback_and_system_server_off():
    env = dynamo_env("nats://127.0.0.1:4222", "http://127.0.0.1:2379,http://127.0.0.1:2381", None)
    assert {env[v] for v in HOST_VARS} == {"127.0.0.1"}
    assert env["DYN_SYSTEM_PORT"] == "-1"
    assert "DYN_SYSTEM_USE_ENDPOINT_HEALTH_STATUS" not in env


@pytest.mark.parametrize("port", [32768, 40000, 65535, -1, True, "8000", 1.0])
def test_system_port_must_fit_i16(port):
    with pytest.raises(PlanError):
        dynamo_env("nats://127.0.0.1:4222", "http://127.0.0.1:2379", port)


@pytest.mark.parametrize("nats,etcd", [("127.0.0.1:4222", "http://127.0.0.1:2379"),
                                       ("nats://127.0.0.1:4222", "127.0.0.1:2379"),
                                       ("nats://a b:1", "http://127.0.0.1:2379"),
                                       ("nats://127.0.0.1:4222\nX=1", "http://127.0.0.1:2379"),
                                       ("", "http://127.0.0.1:2379")])
def test_bad_urls_rejected(nats, etcd):
    with pytest.raises(PlanError):
        dynamo_env(nats, etcd, None)


def test_bad_host_rejected():
    with pytest.raises(ConfigError):
        dynamo_env("nats://127.0.0.1:4222", "http://127.0.0.1:2379", None, host="0.0.0.0; rm -rf /")


def test_frontend_command():
    assert frontend_command("/v/bin/python", "10.0.0.5", 8000) == [
        "/v/bin/python", "-m", "dynamo.frontend", "--http-host", "10.0.0.5", "--http-port", "8000"]
    cmd = frontend_command("python3", "127.0.0.1", 8001, namespace="srt", router_mode="round-robin",
                           extra_args=["--migration-limit", 3])
    assert cmd[-6:] == ["--namespace", "srt", "--router-mode", "round-robin", "--migration-limit", "3"]
    with pytest.raises(ConfigError):
        frontend_command("python3", "127.0.0.1", 0)
    with pytest.raises(PlanError):
        frontend_command("python3", "127.0.0.1", 8000, namespace="a.b")


def test_mocker_command_roles():
    prefill = mocker_command("/v/bin/python", "/models/m", "served", "prefill", "srt")
    assert prefill == ["/v/bin/python", "-m", "dynamo.mocker", "--model-path", "/models/m", "--model-name", "served",
                       "--engine-type", "sglang", "--endpoint", "dyn://srt.prefill.generate",
                       "--disaggregation-mode", "prefill"]
    decode = mocker_command("/v/bin/python", "/models/m", "served", "decode", "srt", speedup_ratio=2, startup_time=1)
    assert "dyn://srt.backend.generate" in decode
    assert decode[decode.index("--disaggregation-mode") + 1] == "decode"
    assert decode[-4:] == ["--speedup-ratio", "2.0", "--startup-time", "1.0"]
    agg = mocker_command("/v/bin/python", "/models/m", "served", None)
    assert "dyn://dynamo.backend.generate" in agg and "--disaggregation-mode" not in agg


@pytest.mark.parametrize("kwargs", [{"mode": "both"}, {"namespace": "x y"}, {"namespace": ""},
                                    {"model_path": ""}, {"served_model_name": "a\nb"}])
def test_mocker_command_rejects_bad_values(kwargs):
    args = {"python": "python3", "model_path": "/m", "served_model_name": "s", "mode": None, **kwargs}
    with pytest.raises(PlanError):
        mocker_command(**args)


def test_component_names():
    assert (component_for("prefill"), component_for("decode"), component_for(None)) == ("prefill", "backend", "backend")


def test_parse_recorded_health():
    h = parse_frontend_health(RECORDED_HEALTH)
    assert h == FrontendHealth("healthy", {"backend": 1, "prefill": 1})
    assert (h.prefill, h.decode) == (1, 1)
    assert h.has(prefill=1, decode=1) and not h.has(prefill=2, decode=1)
    assert parse_frontend_health(RECORDED_HEALTH.encode(), namespace="ns1") == h
    assert parse_frontend_health(json.loads(RECORDED_HEALTH), namespace="other").instances == {}


def test_parse_empty_and_multiple():
    assert parse_frontend_health(RECORDED_EMPTY_HEALTH) == FrontendHealth("healthy", {})
    inst = [{"component": c, "endpoint": "generate", "namespace": "ns", "instance_id": i}
            for i, c in enumerate(["prefill", "prefill", "backend", "backend", "backend"])]
    inst.append(dict(inst[0]))  # the same instance listed twice counts once
    h = parse_frontend_health({"status": "healthy", "instances": inst})
    assert (h.prefill, h.decode) == (2, 3) and h.has(prefill=2, decode=3)
    assert not parse_frontend_health({"status": "unhealthy", "instances": inst}).has(prefill=1)


@pytest.mark.parametrize("payload", ["", "not json", "[]", "null", '{"status": 1}', '{"instances": []}',
                                     '{"status": "healthy", "instances": {}}', b"\xff"])
def test_parse_garbage_is_not_ready(payload):
    h = parse_frontend_health(payload)
    assert h.status == "invalid" and h.instances == {} and h.problem
    assert not h.has()
