"""Job file + cluster file: cross-checks (tp/dp/ep against GPUs, modes, profiling), aliases, defaults."""

import json
from pathlib import Path

import pytest

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.resolved import ResolvedJob, load_job, load_job_text

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ClusterConfig(default_account="acct", default_partition="batch", default_time_limit="4:00:00",
                        model_paths={"deepseek-r1": "/models/DeepSeek-R1", "llama-70b": "/models/Llama-3-70B"},
                        containers={"latest": "/c/latest.sqsh", "stable": "/c/stable.sqsh"})
CLUSTER._source = "/site/srtslurm.yaml"

HEAD = """\
name: t
model:
  path: deepseek-r1
  container: latest
"""
DISAGG = HEAD + """\
resources:
  prefill_nodes: {pn}
  decode_nodes: {dn}
  prefill_workers: {pw}
  decode_workers: {dw}
"""


def disagg(pn=1, dn=2, pw=1, dw=1, tail=""):
    return DISAGG.format(pn=pn, dn=dn, pw=pw, dw=dw) + tail


def errors(text, cluster=CLUSTER) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        load_job_text(text, cluster, "job.yaml")
    err = info.value
    return err.errors if isinstance(err, ConfigErrors) else [err]


def line_of(text, needle):
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_seed_example_resolves():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    assert r.model_path == "/models/DeepSeek-R1" and r.container == "/c/latest.sqsh"
    assert (r.account, r.partition, r.time_limit) == ("acct", "batch", "02:00:00")
    assert r.gpus_per_node == 4 and r.total_nodes == 3 and r.total_gpus == 12
    assert r.layouts["prefill"].gpus_per_worker == 4
    assert r.layouts["decode"].nodes_per_worker == 2 and r.layouts["decode"].gpus_per_worker == 8
    assert r.parallel_sizes("decode") == {"tp": 8, "dp": 8, "ep": 8}
    assert r.parallel_sizes("prefill") == {"tp": 4, "dp": 1, "ep": 1}
    assert r.served_model_name() == "DeepSeek-R1"


def test_job_slurm_section_overrides_cluster_defaults():
    r = load_job_text(disagg(tail="slurm:\n  account: mine\n  partition: gpu\n  time_limit: '30'\n"), CLUSTER)
    assert (r.account, r.partition, r.time_limit) == ("mine", "gpu", "30")


def test_gpus_per_node_from_cluster_unless_job_sets_it():
    cluster8 = CLUSTER.model_copy(update={"gpus_per_node": 8})
    assert load_job_text(disagg(), cluster8).layouts["prefill"].gpus_per_worker == 8
    r = load_job_text(disagg().replace("resources:\n", "resources:\n  gpus_per_node: 2\n"), cluster8)
    assert r.gpus_per_node == 2 and r.layouts["decode"].gpus_per_worker == 4


def test_served_model_name_override():
    r = load_job_text(HEAD.replace("  container", "  served_model_name: ds\n  container") +
                      "resources:\n  agg_nodes: 1\n  agg_workers: 1\n", CLUSTER)
    assert r.served_model_name() == "ds"


def test_tp_must_match_gpus_per_worker():
    text = disagg(tail="backend:\n  sglang_config:\n    prefill:\n      tensor-parallel-size: 8\n")
    (err,) = errors(text)
    assert err.key == "backend.sglang_config.prefill.tensor-parallel-size"
    assert err.line == line_of(text, "tensor-parallel-size")
    assert "tensor parallel size 8 does not match the 4 GPUs each prefill worker gets" in str(err)
    assert "1 prefill node(s) x 4 GPUs / 1 worker(s)" in str(err)
    assert "set tensor-parallel-size: 4" in str(err)


def test_tp_for_several_workers_per_node():
    text = HEAD + ("resources:\n  agg_nodes: 1\n  agg_workers: 2\n"
                   "backend:\n  sglang_config:\n    aggregated:\n      tp-size: 4\n")
    (err,) = errors(text)
    assert "does not match the 2 GPUs each agg worker gets" in str(err)
    ok = load_job_text(text.replace("tp-size: 4", "tp-size: 2"), CLUSTER)
    assert ok.parallel_sizes("agg")["tp"] == 2


def test_tp_spanning_nodes_counts_every_node():
    text = disagg(pn=1, dn=12, tail="backend:\n  sglang_config:\n    decode:\n      tp-size: 48\n"
                                    "      dp-size: 48\n      ep-size: 48\n")
    r = load_job_text(text, CLUSTER)
    assert r.parallel_sizes("decode") == {"tp": 48, "dp": 48, "ep": 48}
    assert r.total_gpus == 52


@pytest.mark.parametrize("key, value, needle", [
    ("data-parallel-size", 3, "data-parallel-size 3 must divide the worker's 8 GPUs"),
    ("expert-parallel-size", 16, "expert-parallel-size 16 must divide the worker's 8 GPUs"),
    ("dp", 0, "must be a positive integer"),
    ("ep-size", "eight", "must be a positive integer"),
    ("tp-size", True, "must be a positive integer"),
])
def test_dp_ep_checked_against_world(key, value, needle):
    text = disagg(tail=f"backend:\n  sglang_config:\n    decode:\n      {key}: {json.dumps(value)}\n")
    errs = errors(text)
    assert any(needle in str(e) for e in errs), [str(e) for e in errs]
    assert all(e.line == line_of(text, key) for e in errs if needle in str(e))


def test_two_spellings_of_tp():
    text = disagg(tail="backend:\n  sglang_config:\n    prefill:\n      tp-size: 4\n      tensor-parallel-size: 4\n")
    (err,) = errors(text)
    assert "both tp-size and tensor-parallel-size are set" in str(err)


@pytest.mark.parametrize("flag", ["port", "host", "model-path", "dist-init-addr", "node_rank",
                                  "disaggregation-mode"])
def test_plan_owned_flags_are_refused(flag):
    text = disagg(tail=f"backend:\n  sglang_config:\n    decode:\n      {flag}: 1\n")
    (err,) = errors(text)
    kebab = flag.replace("_", "-")
    assert err.key == f"backend.sglang_config.decode.{kebab}"
    assert f"'{kebab}' is set by srtctl from the plan" in str(err)
    assert err.line == line_of(text, flag)


def test_uneven_layout_points_at_resources():
    text = disagg(pn=3, pw=2)
    (err,) = errors(text)
    assert err.key == "resources.prefill_nodes" and err.line == line_of(text, "prefill_nodes")
    assert "3 nodes cannot be split evenly among 2 workers" in str(err)


def test_sglang_section_of_the_other_mode():
    text = disagg(tail="backend:\n  sglang_config:\n    aggregated:\n      mem-fraction-static: 0.8\n")
    (err,) = errors(text)
    assert err.key == "backend.sglang_config.aggregated" and "disaggregated job" in str(err)
    text = HEAD + ("resources:\n  agg_nodes: 1\n  agg_workers: 1\n"
                   "backend:\n  sglang_config:\n    decode:\n      mem-fraction-static: 0.8\n")
    (err,) = errors(text)
    assert err.key == "backend.sglang_config.decode" and "an aggregated job" in str(err)


def test_profiling_requires_manual_benchmark():
    text = disagg(tail="profiling:\n  type: torch\nbenchmark:\n  type: sa-bench\n  isl: 8\n  osl: 8\n"
                       "  concurrencies: [1]\n")
    (err,) = errors(text)
    assert err.key == "benchmark.type" and err.line == line_of(text, "type: sa-bench")
    assert "mutually exclusive" in str(err) and 'benchmark.type: "manual"' in str(err)
    ok = load_job_text(disagg(tail="profiling:\n  type: nsys\nbenchmark:\n  type: manual\n"), CLUSTER)
    assert ok.job.profiling.type == "nsys"


def test_engine_and_endpoint_combinations():
    (err,) = errors(disagg(tail="backend:\n  engine: sim\n"))
    assert err.key == "backend.engine" and "sglang router" in str(err)
    (err,) = errors(disagg(tail="backend:\n  engine: dynamo-mocker\n  use_sglang_router: true\n"))
    assert err.key == "backend.use_sglang_router"
    assert load_job_text(disagg(tail="backend:\n  engine: sim\n  use_sglang_router: true\n"), CLUSTER)


def test_unknown_aliases_are_reported_together_with_known_names():
    text = HEAD.replace("deepseek-r1", "deepseek").replace("latest", "newest") + \
        "resources:\n  agg_nodes: 1\n  agg_workers: 1\n"
    errs = errors(text)
    assert [e.key for e in errs] == ["model.path", "model.container"]
    assert errs[0].line == 3 and errs[1].line == 4
    assert "known model_paths aliases in /site/srtslurm.yaml: deepseek-r1, llama-70b" in str(errs[0])
    assert "did you mean 'deepseek-r1'?" in str(errs[0])
    assert "known containers aliases in /site/srtslurm.yaml: latest, stable" in str(errs[1])


def test_container_required_with_pyxis_only():
    text = "name: t\nmodel:\n  path: /m\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
    (err,) = errors(text)
    assert err.key == "model.container" and "container_runtime: none" in str(err)
    host = CLUSTER.model_copy(update={"container_runtime": "none"})
    r = load_job_text(text, host)
    assert r.container is None and r.model_path == "/m"
    # a container alias given on a host-process cluster is resolved but not used
    assert load_job_text(HEAD + "resources:\n  agg_nodes: 1\n  agg_workers: 1\n", host).container is None


def test_validation_errors_stop_before_cross_checks():
    errs = errors(disagg(tail="benchmark:\n  isl: 0\n"))
    assert [e.key for e in errs] == ["benchmark.isl"]


def test_json_round_trip(tmp_path):
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    data = r.to_json()
    assert data["resolved"]["model_path"] == "/models/DeepSeek-R1" and data["resolved"]["total_nodes"] == 3
    p = tmp_path / "resolved.json"
    p.write_text(json.dumps(data))
    back = ResolvedJob.read(p)
    assert back.job == r.job and back.cluster == r.cluster and back.layouts == r.layouts
    assert (back.model_path, back.container, back.account, back.time_limit) == \
        (r.model_path, r.container, r.account, r.time_limit)
    assert back.to_json() == data


def test_snake_case_flag_errors_point_at_their_line():
    text = disagg(tail="backend:\n  sglang_config:\n    prefill:\n      mem_fraction_static: 0.8\n"
                       "      tensor_parallel_size: 2\n")
    (err,) = errors(text)
    assert err.key == "backend.sglang_config.prefill.tensor-parallel-size"
    assert err.line == line_of(text, "tensor_parallel_size")


def test_cluster_file_survives_the_json_round_trip():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    assert ResolvedJob.from_json(json.loads(json.dumps(r.to_json()))).cluster.source == "/site/srtslurm.yaml"
