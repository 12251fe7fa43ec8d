"""The srt-slurm (v1) recipe converter: every mapping entry does what docs/migrating.md says."""

import copy

import pytest
import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document, is_incumbent
from srt_agent.incumbent.mapping import MAPPING, MIGRATING_DOC, lookup, regenerate_doc
from srt_agent.resolved import resolve_job
from srt_agent.yaml_source import parse_yaml

BASE = {
    "name": "r",
    "model": {"path": "m", "container": "c", "precision": "fp8"},
    "resources": {"gpu_type": "gb200", "prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1,
                  "decode_workers": 1, "gpus_per_node": 4},
    "frontend": {"type": "dynamo"},
}
# a value for each plain (same/moved) key; the default is 3
SAMPLES = {
    "name": "r2", "model.path": "hf:org/m", "model.container": "lmsysorg/sglang:v1", "model.precision": "fp4",
    "resources.gpu_type": "h100", "slurm.account": "a", "slurm.partition": "p", "slurm.time_limit": "01:00:00",
    "sbatch_directives.*": "x", "backend.engine_type": "vllm", "backend.speedup_ratio": 2.0,
    "backend.prefill_environment.*": "1", "backend.decode_environment.*": "1",
    "backend.aggregated_environment.*": "1", "frontend.enable_multiple_frontends": False,
    "frontend.args.*": "kv", "frontend.env.*": "v", "dynamo.install": False, "dynamo.hash": "abc123",
    "dynamo.version": "1.1.0", "backend.sglang_config.*.served-model-name": "org/x", "setup_script": "s.sh", "extra_mount": ["/a:/b"], "benchmark.req_rate": "inf",
    "benchmark.random_range_ratio": 0.5, "benchmark.concurrencies": [4, 8], "profiling.type": "torch",
}


def convert(data):
    return convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"))


def with_key(source: str, value):
    data = copy.deepcopy(BASE)
    node = data
    parts = [p.replace("*", "name") if p != "*" else "K" for p in source.split(".")]
    if parts[:2] == ["backend", "sglang_config"] and parts[2] == "K":
        parts[2] = "prefill"
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return data, tuple(parts)


def get(data, target):
    for p in target:
        data = data[p]
    return data


def test_migrating_doc_is_generated_from_the_mapping():
    text = MIGRATING_DOC.read_text()
    assert regenerate_doc(text) == text, "docs/migrating.md is stale: run python -m srt_agent.docgen"
    for e in MAPPING:
        assert f"| `{e.source}` |" in text


@pytest.mark.parametrize("entry", [e for e in MAPPING if e.how in ("same", "moved") and e.source != "backend.gpu_type"],
                         ids=lambda e: e.source)
def test_plain_keys_land_where_the_table_says(entry):
    value = SAMPLES.get(entry.source, 3)
    data, path = with_key(entry.source, value)
    out = convert(data).data
    target = tuple(entry.target.split("."))
    if target[-1] == "*":
        target = (*target[:-1], path[-1])
    if path[:2] == ("backend", "sglang_config"):
        target = (*target[:3], path[-1]) if target[0] == "backend" else target
    got = get(out, target)
    assert got == (str(value) if entry.source.startswith("sbatch") else value)


@pytest.mark.parametrize("entry", [e for e in MAPPING if e.how == "refused"], ids=lambda e: e.source)
def test_refused_keys_name_the_key_and_line(entry):
    data, path = with_key(entry.source, {"a": 1} if entry.source in ("base",) else True)
    with pytest.raises(ConfigError) as exc:
        convert(data)
    errors = exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]
    assert any(e.key == ".".join(path) and e.line for e in errors), [e.render() for e in errors]


@pytest.mark.parametrize("entry", [e for e in MAPPING if e.how in ("approximated", "dropped")
                                   and e.source != "dynamo.top_of_tree"], ids=lambda e: e.source)
def test_approximated_and_dropped_keys_are_in_the_notice(entry):
    data, path = with_key(entry.source, "x")
    conv = convert(data)
    assert any(n.startswith(".".join(path)) for n in conv.notes), conv.notes
    assert entry.source in conv.notice() and conv.notice().count("note:") == 1


def test_converted_values():
    data = copy.deepcopy(BASE)
    data.update({
        "dynamo": {"top_of_tree": True, "request_plane": "tcp"},
        "health_check": {"max_attempts": 30, "interval_seconds": 4},
        "environment": {"G": "1"},
        "container_mounts": {"/data": "/d"},
        "backend": {"type": "mocker", "decode_environment": {"G": "mine"},
                    "sglang_config": {"prefill": {"served_model_name": "org/x", "disaggregation-mode": "prefill"},
                                      "decode": {"served-model-name": "other", "disaggregation-mode": "decode"}}},
        "frontend": {"type": "sglang"},
        "benchmark": {"type": "sa-bench", "isl": 100, "osl": 10, "concurrencies": "4x8"},
        "profiling": {"type": "nsys", "prefill": {"start_step": 1, "stop_step": 5},
                      "decode": {"start_step": 2, "stop_step": 9}},
    })
    conv = convert(data)
    out = conv.data
    b = out["backend"]
    assert b["engine"] == "dynamo-mocker" and b["use_sglang_router"] is True
    assert b["dynamo_git_ref"] == "main"
    assert b["prefill_environment"] == {"G": "1", "DYN_REQUEST_PLANE": "tcp"}
    assert b["decode_environment"]["G"] == "mine" and b["frontend_environment"]["DYN_REQUEST_PLANE"] == "tcp"
    assert out["health"]["worker_timeout_s"] == 120.0
    assert out["extra_mount"] == ["/data:/d"]
    assert out["model"]["served_model_name"] == "org/x"
    assert "sglang_config" not in b  # both flags are the plan's own
    assert out["benchmark"] == {"type": "manual"}
    assert out["profiling"]["isl"] == 100 and out["profiling"]["concurrency"] == 4
    assert out["profiling"]["decode"] == {"start_step": 2, "stop_step": 9}
    assert any("top_of_tree" in n for n in conv.notes)


def test_default_dynamo_version_is_the_incumbents():
    assert convert(BASE).data["backend"]["dynamo_version"] == "0.8.0"


def test_wrong_disaggregation_mode_and_unknown_keys_are_refused_with_lines():
    data = copy.deepcopy(BASE)
    data["backend"] = {"sglang_config": {"decode": {"disaggregation-mode": "prefill"}}, "frobnicate": 1}
    data["benchmark"] = {"type": "router"}
    with pytest.raises(ConfigErrors) as exc:
        convert(data)
    keys = {e.key: e.line for e in exc.value.errors}
    assert set(keys) == {"backend.sglang_config.decode.disaggregation-mode", "backend.frobnicate", "benchmark.type"}
    assert all(keys.values())


def test_recognised_by_sections_only():
    assert is_incumbent(BASE)
    ours = {k: v for k, v in BASE.items() if k != "frontend"}
    assert not is_incumbent(ours)
    assert is_incumbent({**ours, "backend": {"type": "sglang"}})
    assert is_incumbent({**ours, "zip_override_a": {}})


def test_resolved_errors_point_at_recipe_lines(tmp_path):
    data = copy.deepcopy(BASE)
    data["backend"] = {"sglang_config": {"prefill": {"tp-size": 3}}}  # not a divisor of the worker's 4 GPUs
    text = yaml.safe_dump(data, sort_keys=False)
    conv = convert_document(parse_yaml(text, "recipe.yaml"))
    cluster = ClusterConfig(model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})
    with pytest.raises(ConfigErrors) as exc:
        resolve_job(conv.document(), cluster)
    (err,) = exc.value.errors
    assert err.key == "backend.sglang_config.prefill.tp-size"
    assert text.splitlines()[err.line - 1].strip() == "tp-size: 3"


def test_lookup_prefers_the_specific_flag_entry():
    assert lookup(("backend", "sglang_config", "decode", "served-model-name")).target == "model.served_model_name"
    assert lookup(("backend", "sglang_config", "decode", "mem-fraction-static")).how == "same"


def _eval_recipe(**bench):
    data = copy.deepcopy(BASE)
    data["benchmark"] = bench
    return data


@pytest.mark.parametrize("task,rel", [("gsm8k", "gsm8k/test.jsonl"), ("mmlu", "mmlu"),
                                      ("gpqa", "gpqa/gpqa_diamond.csv")])
def test_accuracy_benchmarks_become_evals_with_the_cluster_dataset(task, rel):
    data = _eval_recipe(type=task, num_examples=50, max_tokens=256, num_threads=32, num_shots=2, repeat=4)
    doc = parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml")
    conv = convert_document(doc, ClusterConfig(eval_datasets_dir="/shared/evals/"))
    assert conv.data["benchmark"] == {"type": task, "num_examples": 50, "max_tokens": 256, "concurrency": 32,
                                      "num_shots": 2, "repeat": 4, "dataset_path": f"/shared/evals/{rel}"}
    assert conv.lines[("benchmark", "dataset_path")] == doc.line_of(("benchmark", "type"))


def test_accuracy_benchmark_without_eval_datasets_dir_is_refused():
    with pytest.raises(ConfigError) as exc:
        convert(_eval_recipe(type="gsm8k", num_examples=5))
    errors = exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]
    text = "\n".join(e.render() for e in errors)
    assert "eval_datasets_dir" in text and "gsm8k/test.jsonl" in text and "recipe.yaml" in text
    assert any(e.key == "benchmark.type" and e.line for e in errors)


@pytest.mark.parametrize("bench,key", [({"type": "longbenchv2"}, "benchmark.type"),
                                       ({"type": "gsm8k", "temperature": 0.6}, "benchmark.temperature")])
def test_other_accuracy_types_and_settings_are_refused(bench, key):
    doc = parse_yaml(yaml.safe_dump(_eval_recipe(**bench), sort_keys=False), "recipe.yaml")
    with pytest.raises(ConfigError) as exc:
        convert_document(doc, ClusterConfig(eval_datasets_dir="/shared/evals"))
    errors = exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]
    assert [e.key for e in errors] == [key] and errors[0].line == doc.line_of(tuple(key.split(".")))


def test_eval_datasets_dir_must_be_absolute():
    with pytest.raises(ValueError):
        ClusterConfig(eval_datasets_dir="evals")


@pytest.mark.parametrize("tp,gpus", [(2, 2), (1, 1), (4, None), (3, None)])  # above: test_layout.py
def test_a_tensor_parallel_size_below_the_workers_gpus_becomes_gpus_per_worker(tp, gpus):
    data = copy.deepcopy(BASE)
    data["backend"] = {"sglang_config": {"prefill": {"tensor-parallel-size": tp}, "decode": {"tp-size": 4}}}
    conv = convert(data)
    res = conv.data["resources"]
    assert res.get("gpus_per_prefill") == gpus and "gpus_per_decode" not in res
    assert any("gpus_per_prefill" in n for n in conv.notes) == (gpus is not None)
    cluster = ClusterConfig(model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})
    if tp <= 4 and 4 % tp == 0:
        resolved = resolve_job(conv.document(), cluster)
        assert resolved.layouts["prefill"].gpus_per_worker == tp
    else:
        with pytest.raises(ConfigErrors):
            resolve_job(conv.document(), cluster)
