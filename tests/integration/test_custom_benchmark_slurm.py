"""benchmark.type custom through real sbatch on the local SLURM cluster: the command runs as an srun
step (`srt-custom-benchmark`) on the head node, reaches the endpoint and writes into the results dir;
the worker steps take slurm.srun_options."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from test_apply_slurm import SlurmRun, model_dir  # noqa: F401  (model_dir is a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLIENT = r'''
import json, os, urllib.request
url, model, out = os.environ["SRT_ENDPOINT_URL"], os.environ["SRT_MODEL"], os.environ["SRT_RESULTS_DIR"]
body = json.dumps({"model": model, "prompt": "hi", "max_tokens": 3}).encode()
req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=30))
json.dump({"tokens": answer["usage"]["completion_tokens"], "node": os.environ.get("SLURMD_NODENAME"),
           "step": os.environ.get("SLURM_STEP_ID"), "job_name": os.environ.get("SLURM_JOB_NAME")},
          open(os.path.join(out, "mine.json"), "w"))
'''


def test_custom_command_runs_as_an_srun_step_on_the_head_node(local_cluster, tmp_path, model_dir):  # noqa: F811
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    path = run.job({"type": "custom", "command": [sys.executable, str(client)]}, name="custom-slurm",
                   resources={"agg_nodes": 1, "agg_workers": 1})
    job = yaml.safe_load(path.read_text())
    job["slurm"] = {"srun_options": {"cpu-bind": "none", "mem-bind": "none"}}  # srun takes them on worker steps
    path.write_text(yaml.safe_dump(job))
    res = run.apply(path)
    assert res.returncode == 0, res.stderr
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed", "cancelled"))
    assert status["state"] == "succeeded", status.get("failure")
    mine = json.loads((run_dir / "results" / "mine.json").read_text())
    plan = json.loads((run_dir / "plan.json").read_text())
    assert mine["tokens"] == 3 and mine["node"] == plan["head_node"]
    assert mine["step"] not in (None, "") and mine["job_name"] == "srt-custom-benchmark"
    assert json.loads((run_dir / "results" / "custom_benchmark.json").read_text())["exit_code"] == 0
    worker = next(p for p in plan["processes"] if p["kind"] == "worker")
    assert "--cpu-bind=none" in worker["launch"] and "--mem-bind=none" in worker["launch"]
