"""The job-file keys of evals: the examples in docs/evals.md (with made-up datasets), key errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from eval_data import write_gpqa, write_gsm8k, write_mmlu

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError
from srt_agent.resolved import load_job_text

ROOT = Path(__file__).resolve().parents[3]
BASE = {"name": "e", "model": {"path": "/models/m"},
        "resources": {"agg_nodes": 1, "agg_workers": 1, "gpus_per_node": 4},
        "backend": {"engine": "sim", "use_sglang_router": True}}


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def cluster():
    return ClusterConfig.model_validate({"executor": "local", "container_runtime": "none"})


def _job(cluster, fragment: dict):
    return load_job_text(yaml.safe_dump(_merge(BASE, fragment)), cluster, "job.yaml")


def test_the_docs_examples_validate_with_a_dataset_in_place(tmp_path, cluster):
    gsm8k = write_gsm8k(tmp_path / "gsm8k", 12)
    text = (ROOT / "docs" / "evals.md").read_text().replace("/data/gsm8k/test.jsonl", str(gsm8k))
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3
    for body in blocks:
        job = _job(cluster, yaml.safe_load(body))
        assert job.job.benchmark.type in ("gsm8k", "sa-bench", "manual")


def _error(cluster, fragment) -> str:
    with pytest.raises(ConfigError) as exc:
        _job(cluster, fragment)
    return str(exc.value)


def test_eval_key_errors(tmp_path, cluster):
    g = str(write_gsm8k(tmp_path / "g", 8))
    assert "needs dataset_path" in _error(cluster, {"benchmark": {"type": "gsm8k"}})
    msg = _error(cluster, {"benchmark": {"type": "sa-bench", "isl": 8, "osl": 8, "concurrencies": [1],
                                         "dataset_path": g}})
    assert "accuracy:" in msg
    assert "must be an absolute path" in _error(cluster, {"benchmark": {"type": "mmlu", "dataset_path": "mmlu"}})
    assert "gates a sa-bench sweep" in _error(cluster, {"benchmark": {"type": "manual", "accuracy": {
        "task": "gsm8k", "dataset_path": g}}})
    assert "min_scor" in _error(cluster, {"benchmark": {"type": "gsm8k", "dataset_path": g, "min_scor": 0.5}})


def test_missing_datasets_are_reported_with_the_job_line(tmp_path, cluster):
    msg = _error(cluster, {"benchmark": {"type": "sa-bench", "isl": 8, "osl": 8, "concurrencies": [1],
                                         "accuracy": {"task": "mmlu", "dataset_path": str(tmp_path / "none")}}})
    assert "benchmark.accuracy.dataset_path" in msg and "directory not found" in msg and "docs/evals.md" in msg
    bad = write_gpqa(tmp_path / "g.csv", 2)
    bad.write_text("Question\nq\n")
    msg = _error(cluster, {"backend": {"sim": {"answers": {"dataset_path": str(bad), "accuracy": 0.5}}}})
    assert "backend.sim.answers.dataset_path" in msg and "'Correct Answer'" in msg


def test_valid_eval_jobs_resolve(tmp_path, cluster):
    m = str(write_mmlu(tmp_path / "mmlu"))
    job = _job(cluster, {"benchmark": {"type": "mmlu", "dataset_path": m, "num_examples": 4},
                         "backend": {"sim": {"answers": {"dataset_path": m, "accuracy": 0.7}}}})
    from srt_agent.evals.config import eval_spec

    spec = eval_spec(job.job.benchmark)
    assert (spec.num_shots, spec.max_tokens, spec.concurrency, spec.num_examples) == (5, 8, 64, 4)


def test_the_plan_passes_sim_answers_to_every_simulated_worker(tmp_path, cluster):
    from srt_agent.plan import NodeInfo, PlanInputs, make_plan

    g = str(write_gsm8k(tmp_path / "g", 8))
    resolved = _job(cluster, {"resources": {"agg_nodes": 1, "agg_workers": 2, "gpus_per_node": 4},
                              "backend": {"sim": {"answers": {"dataset_path": g, "accuracy": 0.25}}}})
    plan = make_plan(resolved, PlanInputs(job_id="1", nodes=[NodeInfo(name="n0", address="127.0.0.1")],
                                          log_dir=str(tmp_path / "logs"), srtctl_root="/opt/srt",
                                          host_python="/venv/bin/python"))
    workers = plan.by_kind("worker")
    assert len(workers) == 2
    for w in workers:
        i = w.command.index("--sim-answers-dataset")
        assert w.command[i + 1] == g and w.command[w.command.index("--sim-answers-accuracy") + 1] == "0.25"
