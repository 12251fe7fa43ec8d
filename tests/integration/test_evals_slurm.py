"""Every eval task through real sbatch on the local SLURM cluster (three one-node jobs at once):
gsm8k as the gate in front of a sa-bench sweep, MMLU and GPQA as the job's benchmark."""

from __future__ import annotations

import json

import pytest
import yaml
from eval_data import write_gpqa, write_gsm8k, write_mmlu
from test_apply_slurm import SlurmRun, model_dir  # noqa: F401  (model_dir is a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_every_eval_task_runs_on_the_cluster(local_cluster, tmp_path, model_dir):  # noqa: F811
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    data = {"gsm8k": write_gsm8k(tmp_path / "data" / "gsm8k", 10), "mmlu": write_mmlu(tmp_path / "data" / "mmlu"),
            "gpqa": write_gpqa(tmp_path / "data" / "gpqa_main.csv", 8)}
    benchmarks = {
        "gsm8k": {"type": "sa-bench", "isl": 16, "osl": 4, "concurrencies": [2], "prompt_multiplier": 1,
                  "warmup_multiplier": 0,
                  "accuracy": {"task": "gsm8k", "dataset_path": str(data["gsm8k"]), "min_score": 0.9}},
        "mmlu": {"type": "mmlu", "dataset_path": str(data["mmlu"]), "concurrency": 8},
        "gpqa": {"type": "gpqa", "dataset_path": str(data["gpqa"]), "num_examples": 6},
    }
    accuracy = {"gsm8k": 1.0, "mmlu": 0.5, "gpqa": 1.0}
    run_dirs = {}
    for task, bench in benchmarks.items():
        path = run.job(bench, name=f"eval-{task}", resources={"agg_nodes": 1, "agg_workers": 1})
        job = yaml.safe_load(path.read_text())
        job["backend"]["sim"]["answers"] = {"dataset_path": str(data[task]), "accuracy": accuracy[task]}
        path.write_text(yaml.safe_dump(job))
        res = run.apply(path)
        assert res.returncode == 0, res.stderr
        run_dirs[task] = run.run_dir(res.stdout)
    for task, run_dir in run_dirs.items():
        status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed", "cancelled"))
        assert status["state"] == "succeeded", status["failure"]
        assert status["executor"] == "slurm"
        result = json.loads((run_dir / "results" / f"eval_{task}.json").read_text())
        samples = (run_dir / "results" / f"eval_{task}_samples.jsonl").read_text().splitlines()
        assert result["num_examples"] == len(samples) == {"gsm8k": 5, "mmlu": 12, "gpqa": 6}[task]
        assert result["num_failed"] == 0 and result["num_invalid"] == 0
        if accuracy[task] == 1.0:
            assert result["score"] == 1.0
        else:
            assert 0.2 <= result["score"] <= 0.8 and len(result["per_subject"]) == 2
        assert status["evals"][task]["score"] == result["score"]
    assert (run_dirs["gsm8k"] / "results" / "result_isl16_osl4_c2.json").is_file()
