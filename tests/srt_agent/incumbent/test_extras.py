"""The rarer recipe keys: custom benchmarks, NATS payload, srun options, nginx session affinity,
telemetry / observability (srt_agent/incumbent/extras.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.job_config import JobConfig
from srt_agent.validation import validate_document
from srt_agent.yaml_source import parse_yaml

from .test_convert import BASE

AIPERF = """set -euo pipefail
aiperf profile --url http://localhost:8000 \\
  --concurrency "${CONCURRENCY}" --output-artifact-dir /logs/aiperf
curl -s "http://127.0.0.1:8000/v1/models" >/logs/models.json
"""


def convert(**sections):
    data = copy.deepcopy(BASE)
    for k, v in sections.items():
        data[k] = v
    conv = convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"))
    return conv, validate_document(JobConfig, conv.document())


def refused(**sections) -> list[ConfigError]:
    with pytest.raises(ConfigError) as exc:
        convert(**sections)
    return exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]


def test_a_custom_benchmark_gets_the_endpoint_from_the_environment():
    conv, job = convert(benchmark={"type": "custom", "command": AIPERF, "env": {"CONCURRENCY": 4, "FLAG": True}})
    b = job.benchmark
    assert b.type == "custom" and b.env == {"CONCURRENCY": "4", "FLAG": "true"}
    assert "localhost:8000" not in b.command and "127.0.0.1:8000" not in b.command
    assert "--url ${SRT_ENDPOINT_URL} \\\n" in b.command and '"${SRT_ENDPOINT_URL}/v1/models"' in b.command
    assert "--output-artifact-dir /logs/aiperf" in b.command  # the run directory is /logs in the container too
    assert any("SRT_ENDPOINT_URL" in n and "2 times" in n for n in conv.notes), conv.notes
    assert "benchmark.command" in conv.notice()


def test_custom_benchmark_refusals_name_the_key():
    errs = refused(benchmark={"type": "custom", "command": "curl 'http://localhost:8000/health'"})
    assert errs[0].key == "benchmark.command" and "single quotes" in errs[0].message and errs[0].line
    errs = refused(benchmark={"type": "custom", "command": "x", "container_image": "nvcr.io/x:1"})
    assert [e.key for e in errs] == ["benchmark.container_image"]
    errs = refused(benchmark={"type": "custom", "command": "x"}, profiling={"type": "torch"})
    assert [e.key for e in errs] == ["profiling.type"] and "custom benchmark" in errs[0].message
    errs = refused(benchmark={"type": "custom", "command": "x", "env": {"HF_TOKEN": "hf_x"}})
    assert "looks like a secret" in errs[0].message


@pytest.mark.parametrize("value,ok", [(64, True), (8, True), (0, False), ("big", False), (1.5, False)])
def test_nats_max_payload_mb(value, ok):
    if ok:
        assert convert(infra={"nats_max_payload_mb": value})[1].backend.nats_max_payload == f"{value}MB"
    else:
        assert [e.key for e in refused(infra={"nats_max_payload_mb": value})] == ["infra.nats_max_payload_mb"]


def test_srun_options_go_to_the_worker_steps_validated():
    _, job = convert(srun_options={"mem": "0", "container-remap-root": ""})
    assert job.slurm.srun_options == {"mem": "0", "container-remap-root": None}
    errs = refused(srun_options={"nodelist": "n1"})
    assert "srun_options" in (errs[0].key or "") and "nodelist" in errs[0].message


def test_session_affinity_hashes_the_header():
    _, job = convert(frontend={"type": "dynamo", "nginx_session_affinity": True,
                               "nginx_session_affinity_header": "X-Correlation-ID"})
    assert job.backend.nginx_session_affinity_header == "X-Correlation-ID"
    _, job = convert(frontend={"type": "dynamo", "nginx_session_affinity": True})
    assert job.backend.nginx_session_affinity_header == "X-Dynamo-Session-ID"
    _, job = convert(frontend={"type": "dynamo", "nginx_session_affinity": False,
                               "nginx_session_affinity_header": "X-Correlation-ID"})
    assert job.backend.nginx_session_affinity_header is None
    conv, job = convert(frontend={"type": "sglang", "nginx_session_affinity": True})
    assert job.backend.nginx_session_affinity_header is None and any("nginx's" in n for n in conv.notes)


def test_telemetry_and_observability_are_approximated_with_a_note():
    conv, _ = convert(telemetry={"enabled": True, "provider": "dcgm", "dcgm_exporter": {"port": 9400}},
                      observability={"enabled": True, "tachometer": {"enabled": True}})
    assert {n.split(" ")[0] for n in conv.notes} >= {"telemetry", "observability"}
    assert "telemetry" in conv.notice() and "observability" in conv.notice()
    conv, _ = convert(telemetry={"enabled": False})
    assert not conv.notes


def test_kv_events_config_is_carried_as_srt_slurm_reads_it():
    _, job = convert(backend={"type": "sglang", "kv_events_config": {"aggregated": True, "decode": {"topic": "t"}}})
    assert job.backend.kv_events_config == {"aggregated": True, "decode": {"topic": "t"}}
    _, job = convert(backend={"type": "sglang", "kv_events_config": True})
    assert job.backend.kv_events_config is True
    errs = refused(backend={"type": "sglang", "kv_events_config": {"decode": {"endpoint": "tcp://*:5557"}}})
    assert "set by srtctl" in errs[0].message and "kv_events_config" in (errs[0].key or "")


def test_frontend_env_moves_and_an_artifact_dir_placeholder_gets_a_note():
    conv, job = convert(frontend={"type": "dynamo", "env": {"DYN_LOG": "info",
                                                            "DYN_REQUEST_TRACE_FILE_PATH": "{artifact_dir}/trace"}})
    assert job.backend.frontend_environment == {"DYN_LOG": "info", "DYN_REQUEST_TRACE_FILE_PATH": "{artifact_dir}/trace"}
    notes = [n for n in conv.notes if "{artifact_dir}" in n]
    assert len(notes) == 1 and notes[0].startswith("frontend.env.DYN_REQUEST_TRACE_FILE_PATH (line ")
    assert "not expanded" in notes[0] and "frontend.env" in conv.notice()
