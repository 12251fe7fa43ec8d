"""srt-slurm's trace benchmarks (trace-replay, mooncake-router) and model.container_image
(srt_agent/incumbent/traces.py), and the rounded-down GPU share of an uneven split (layout.py)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import yaml

from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.job_config import JobConfig
from srt_agent.validation import validate_document
from srt_agent.yaml_source import parse_yaml

from .test_convert import BASE

CLUSTER = SimpleNamespace(eval_datasets_dir="/shared/evals/")


def convert(cluster=CLUSTER, **sections):
    data = copy.deepcopy(BASE)
    data.update(sections)
    conv = convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"), cluster)
    return conv, validate_document(JobConfig, conv.document())


def refused(cluster=CLUSTER, **sections) -> list[ConfigError]:
    with pytest.raises(ConfigError) as exc:
        convert(cluster, **sections)
    return exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]


def test_trace_replay_keeps_its_trace_under_the_host_side_of_its_mount():
    conv, job = convert(extra_mount=["/lustre/me/traces:/traces", "/lustre/other:/traces/other"], benchmark={
        "type": "trace-replay", "trace_file": "/traces/kimi/dataset.jsonl", "concurrencies": [4],
        "ttft_threshold_ms": 3000, "itl_threshold_ms": 7, "aiperf_package": "aiperf>=0.7.0"})
    b = job.benchmark
    assert (b.type, b.trace_file, b.concurrencies) == ("trace-replay", "/lustre/me/traces/kimi/dataset.jsonl", [4])
    assert (b.ttft_threshold_ms, b.itl_threshold_ms) == (3000, 7)
    assert any("/traces/kimi/dataset.jsonl -> /lustre/me/traces/kimi/dataset.jsonl" in n for n in conv.notes)
    assert any(n.startswith("benchmark.aiperf_package") and "own load generator" in n for n in conv.notes)
    # the longest mount wins; container_mounts count too
    _, job = convert(extra_mount=["/lustre/me/traces:/traces", "/lustre/other:/traces/other"],
                     benchmark={"type": "trace-replay", "trace_file": "/traces/other/t.jsonl"})
    assert job.benchmark.trace_file == "/lustre/other/t.jsonl"
    _, job = convert(container_mounts={"/host/t": "/t"}, benchmark={"type": "trace-replay", "trace_file": "/t/a.jsonl"})
    assert job.benchmark.trace_file == "/host/t/a.jsonl"


def test_trace_replay_without_thresholds_gets_the_incumbents_defaults_and_an_unmounted_path_as_is():
    conv, job = convert(benchmark={"type": "trace-replay", "trace_file": "/data/t.jsonl", "concurrencies": [1, 8]})
    b = job.benchmark
    assert (b.trace_file, b.ttft_threshold_ms, b.itl_threshold_ms) == ("/data/t.jsonl", 2000, 25)
    assert any("outside the container" in n and "preflight" in n for n in conv.notes)


def test_a_relative_or_misplaced_trace_is_refused_with_its_line():
    errs = refused(benchmark={"type": "trace-replay", "trace_file": "traces/t.jsonl"})
    assert [e.key for e in errs] == ["benchmark.trace_file"] and errs[0].line and "absolute" in errs[0].message
    errs = refused(benchmark={"type": "sa-bench", "isl": 8, "osl": 8, "concurrencies": [1], "trace_file": "/t"})
    assert [e.key for e in errs] == ["benchmark.trace_file"]
    errs = refused(benchmark={"type": "trace-replay", "trace_file": "/t", "aiperf_args": {"x": 1}})
    assert [e.key for e in errs] == ["benchmark.aiperf_args"]
    errs = refused(benchmark={"type": "trace-replay", "trace_file": "/t", "tracefile": "/t"})
    assert [e.key for e in errs] == ["benchmark.tracefile"]  # options of a trace type are walked, not skipped


def test_mooncake_router_replays_the_named_workload_from_the_datasets_directory_uncapped():
    conv, job = convert(benchmark={"type": "mooncake-router", "mooncake_workload": "toolagent",
                                   "ttft_threshold_ms": 2000, "itl_threshold_ms": 25})
    b = job.benchmark
    assert (b.type, b.trace_file, b.concurrencies) == ("trace-replay", "/shared/evals/mooncake/toolagent_trace.jsonl",
                                                       None)
    assert (b.ttft_threshold_ms, b.itl_threshold_ms) == (2000, 25)
    assert conv.lines[("benchmark", "trace_file")] == conv.document().line_of(("benchmark", "trace_file"))
    _, job = convert(benchmark={"type": "mooncake-router"})  # srt-slurm's default workload
    assert job.benchmark.trace_file == "/shared/evals/mooncake/conversation_trace.jsonl"


def test_mooncake_router_refusals_name_the_key_and_a_fix():
    errs = refused(benchmark={"type": "mooncake-router", "mooncake_workload": "conversaton"})
    assert [e.key for e in errs] == ["benchmark.mooncake_workload"] and "conversation" in errs[0].hint
    errs = refused(None, benchmark={"type": "mooncake-router", "mooncake_workload": "conversation"})
    assert [e.key for e in errs] == ["benchmark.type"] and "eval_datasets_dir" in errs[0].message
    assert "/shared/evals/mooncake/conversation_trace.jsonl" in errs[0].hint
    errs = refused(benchmark={"type": "sa-bench", "isl": 8, "osl": 8, "concurrencies": [1],
                              "mooncake_workload": "conversation"})
    assert [e.key for e in errs] == ["benchmark.mooncake_workload"]


def test_container_image_is_descriptive_next_to_a_container_and_the_container_alone():
    conv, job = convert(model={"path": "m", "container": "c", "container_image": "nvcr.io/x/dynamo:1",
                               "precision": "fp4"})
    assert job.model.container == "c"
    assert any(n.startswith("model.container_image") and "dropped" in n for n in conv.notes)
    assert "model.container_image" in conv.notice()
    _, job = convert(model={"path": "m", "container_image": "nvcr.io/x/dynamo:1", "precision": "fp4"})
    assert job.model.container == "nvcr.io/x/dynamo:1"


def test_an_uneven_gpu_split_gets_the_incumbents_rounded_down_share():
    flags = {"tensor-parallel-size": 2}
    conv, job = convert(resources={"gpu_type": "h100", "gpus_per_node": 8, "prefill_nodes": 2, "decode_nodes": 0,
                                   "prefill_workers": 6, "decode_workers": 2},
                        backend={"type": "sglang", "sglang_config": {"prefill": flags, "decode": flags}})
    assert job.resources.gpus_per_prefill == 2
    assert any("rounded down" in n for n in conv.notes)
    # a size that does not fit the node that many times is left to srtctl's own check
    _, job = convert(resources={"gpu_type": "h100", "gpus_per_node": 8, "prefill_nodes": 1, "decode_nodes": 1,
                                "prefill_workers": 3, "decode_workers": 1},
                     backend={"type": "sglang", "sglang_config": {"prefill": {"tensor-parallel-size": 4}}})
    assert job.resources.gpus_per_prefill is None
