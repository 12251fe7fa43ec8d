"""slurm.srun_options reach every worker's srun step (and only those); nginx session affinity in the
dry-run's nginx.conf. Dry-runs the golden container job with both keys added."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from srt_agent.job_config import JobConfig
from srt_agent.srun_options import srun_option_args


def test_option_arguments():
    assert srun_option_args({"mem": "0", "container-remap-root": None, "cpu-bind": "a b;c"}) == [
        "--mem=0", "--container-remap-root", "--cpu-bind=a b;c"]  # argv items: never through a shell


@pytest.mark.parametrize("options,needle", [
    ({"nodelist": "n1"}, "not an srun option"), ({"overlap": None}, "not an srun option"),
    ({"mem-per-cp": "1G"}, "did you mean 'mem-per-cpu'"), ({"mem": "1G\n#SBATCH"}, "control characters"),
    ({"mem": [1]}, "must be a string"),
])
def test_bad_options_are_refused(options, needle):
    with pytest.raises(ValidationError, match=needle):
        JobConfig.model_validate({"name": "t", "model": {"path": "/m"}, "resources": {"agg_nodes": 1, "agg_workers": 1},
                                  "slurm": {"srun_options": options}})


def test_dry_run_puts_them_on_worker_steps_and_affinity_in_nginx(dry_run_variant):
    def edit(job):
        job["slurm"] = {"srun_options": {"mem": 0, "container-remap-root": ""}}
        job["backend"]["nginx_session_affinity_header"] = "X-Correlation-ID"

    out = dry_run_variant(edit)
    plan = json.loads((out / "plan.json").read_text())
    kinds = set()
    for p in plan["processes"]:
        argv = p["launch"]
        kinds.add(p["kind"])
        if p["kind"] == "worker":
            assert argv.index("--mem=0") < argv.index("bash") and "--container-remap-root" in argv, argv
        else:
            assert "--mem=0" not in argv and "--container-remap-root" not in argv, argv
    assert {"worker", "nginx", "frontend"} <= kinds
    conf = (out / "nginx.conf").read_text()
    assert "map $http_x_correlation_id $srt_affinity_key {" in conf and "hash $srt_affinity_key consistent;" in conf
