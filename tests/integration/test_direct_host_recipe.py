"""An srt-slurm (v1) direct-host recipe run as it is on the local SLURM cluster (no pyxis there, a
pyxis cluster file here): `container: direct-host` with a `$NAME` model path, Dynamo mockers and
frontend from the host Python named by $SRTCTL_PYTHON (a Dynamo venv, `dynamo.install: false`),
decode sharing the prefill node, and the recipe's custom command reading $SRT_FRONTEND_URL and
writing into $AIPERF_ARTIFACT_DIR, as srt-slurm's direct-host renderer gives them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from srt_agent.sim.model_dir import write_model_dir

pytestmark = [pytest.mark.cluster, pytest.mark.dynamo, pytest.mark.slow]

VENV = Path(os.environ.get("SRT_DYNAMO_VENV", "/var/cache/srt-slurm/dynamo-venv-1.6.1"))

RECIPE = """\
name: recipe-direct-host
model:
  path: $HOST_RECIPE_MODEL
  container: direct-host
resources:
  gpu_type: h100
  gpus_per_node: {gpus}
  prefill_nodes: 1
  decode_nodes: 0
  prefill_workers: 1
  decode_workers: 1
  gpus_per_prefill: 1
  gpus_per_decode: 1
dynamo:
  install: false
frontend:
  type: dynamo
  enable_multiple_frontends: false
backend:
  type: mocker
  speedup_ratio: 50
  engine_type: vllm
  mocker_config:
    prefill:
      max-num-seqs: 64
    decode:
      max-num-seqs: 64
benchmark:
  type: custom
  command: |
    {python} {bench} --url "$SRT_FRONTEND_URL" --output-artifact-dir "$AIPERF_ARTIFACT_DIR"
"""

BENCH = r'''
import argparse, json, os, urllib.request
ap = argparse.ArgumentParser()
ap.add_argument("--url")
ap.add_argument("--output-artifact-dir")
a = ap.parse_args()
body = json.dumps({"model": os.environ["SRT_MODEL"], "prompt": "hi", "max_tokens": 4}).encode()
req = urllib.request.Request(a.url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=60))
with open(os.path.join(a.output_artifact_dir, "trace_profile_export.json"), "w") as f:
    json.dump({"url": a.url, "endpoint": os.environ["SRT_ENDPOINT_URL"], "dir": a.output_artifact_dir,
               "tokens": answer["usage"]["completion_tokens"]}, f)
'''


def test_direct_host_recipe_runs_on_the_host(local_cluster, tmp_path):
    if not (VENV / "bin" / "python").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Dynamo venv missing at {VENV} (scripts/dynamo-venv builds it)")
        pytest.skip(f"Dynamo venv missing at {VENV}; run scripts/dynamo-venv")
    model = tmp_path / "model"
    write_model_dir(str(model))
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "default_partition": local_cluster.partition, "default_time_limit": "00:10:00",
        "gpus_per_node": local_cluster.gpus_per_node or 4, "use_segment_sbatch_directive": False,
        "container_runtime": "pyxis", "node_addresses": "loopback", "python": sys.executable,
        "containers": {"dynamo-sglang": "/unused.sqsh"}}))
    bench = tmp_path / "bench.py"
    bench.write_text(BENCH)
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(gpus=local_cluster.gpus_per_node or 4,
                                                        python=sys.executable, bench=bench))
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml"), "SLURM_CONF": str(local_cluster.slurm_conf),
           "HOST_RECIPE_MODEL": str(model), "SRTCTL_PYTHON": str(VENV / "bin" / "python")}
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "-f", "recipe.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "converted" in res.stderr and "model.container" in res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = tmp_path / res.stdout.splitlines()[1].removeprefix("Logs: ").rstrip("/")
    try:
        deadline = time.monotonic() + 240
        status = {}
        while time.monotonic() < deadline:
            if (run_dir / "status.json").exists():
                status = json.loads((run_dir / "status.json").read_text())
                if status["state"] in ("failed", "succeeded", "cancelled"):
                    break
            time.sleep(0.5)
        assert status.get("state") == "succeeded", (status.get("failure"), status.get("message"))
        converted = yaml.safe_load((run_dir / "job.converted.yaml").read_text())
        assert converted["model"]["container"] == "none" and converted["model"]["path"] == str(model)
        assert converted["model"]["python"] == str(VENV / "bin" / "python")
        plan = json.loads((run_dir / "plan.json").read_text())
        assert plan["container_image"] is None
        for p in plan["processes"]:
            pyxis = [a for a in p["launch"] if a.startswith(("--container", "--no-container"))]
            assert p["launch"][0] == "srun" and not pyxis, p["name"]
            if p["kind"] in ("worker", "frontend"):
                assert p["command"][0] == str(VENV / "bin" / "python"), p["name"]
        events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
        probe = [e for e in events if e.get("event") == "host_python"]
        assert probe and probe[0]["packages"] == ["dynamo"]  # srtctl installs nothing: the venv has it
        seen = json.loads((run_dir / "results" / "aiperf" / "trace_profile_export.json").read_text())
        ep = plan["endpoint"]
        assert seen["tokens"] > 0 and seen["url"] == seen["endpoint"] == f"http://{ep['address']}:{ep['port']}"
        assert seen["dir"] == str(run_dir / "results" / "aiperf")
        result = json.loads((run_dir / "results" / "custom_benchmark.json").read_text())
        assert result["artifacts"]["count"] == 1
    finally:
        subprocess.run(["scancel", job_id], env=env)
        local_cluster.wait_job(int(job_id))
