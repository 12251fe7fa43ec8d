"""An srt-slurm (v1) recipe run as it is on the local SLURM cluster: Dynamo mockers (backend.type
mocker with its mocker_config flags), decode sharing the prefill node (decode_nodes: 0) with one
GPU per worker, a health_check deadline and an sa-bench sweep with the incumbent's multipliers."""

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
name: recipe-mocker-shared
model:
  path: mock
  container: dynamo-sglang
  precision: fp16
resources:
  gpu_type: gb200
  gpus_per_node: 4
  prefill_nodes: 1
  decode_nodes: 0
  prefill_workers: 1
  decode_workers: 1
  gpus_per_prefill: 1
  gpus_per_decode: 1
frontend:
  type: dynamo
  enable_multiple_frontends: false
backend:
  type: mocker
  speedup_ratio: 50
  engine_type: vllm
  mocker_config:
    prefill:
      num-gpu-blocks-override: 4096
      max-num-seqs: 64
    decode:
      num-gpu-blocks-override: 8192
      max-num-seqs: 128
health_check:
  max_attempts: 24
  interval_seconds: 5
benchmark:
  type: sa-bench
  isl: 64
  osl: 16
  concurrencies: "2"
  num_warmup_mult: 1
  num_prompts_mult: 3
"""


def test_mocker_recipe_with_shared_decode_node_runs(local_cluster, tmp_path):
    if not (VENV / "bin" / "python").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Dynamo venv missing at {VENV} (scripts/dynamo-venv builds it)")
        pytest.skip(f"Dynamo venv missing at {VENV}; run scripts/dynamo-venv")
    model = tmp_path / "model"
    write_model_dir(str(model))
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "default_partition": local_cluster.partition, "default_time_limit": "00:10:00",
        "gpus_per_node": local_cluster.gpus_per_node, "use_segment_sbatch_directive": False,
        "container_runtime": "none", "node_addresses": "loopback", "python": sys.executable,
        "dynamo_venv": str(VENV), "model_paths": {"mock": str(model)},
        "containers": {"dynamo-sglang": "/unused.sqsh"}}))
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml"), "SLURM_CONF": str(local_cluster.slurm_conf)}
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "-f", "recipe.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("note:") == 1 and "converted" in res.stderr
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
        assert (run_dir / "job.converted.yaml").is_file()
        plan = json.loads((run_dir / "plan.json").read_text())
        workers = {p["name"]: p for p in plan["processes"] if p["kind"] == "worker"}
        assert workers["prefill-0"]["node"] == workers["decode-0"]["node"]
        assert workers["prefill-0"]["gpus"] == [0] and workers["decode-0"]["gpus"] == [1]
        cmd = workers["decode-0"]["command"]
        assert cmd[cmd.index("--max-num-seqs") + 1] == "128" and "--speedup-ratio" in cmd
        resolved = json.loads((run_dir / "resolved.json").read_text())
        assert resolved["job"]["health"]["worker_timeout_s"] == 120.0
        assert resolved["job"]["benchmark"]["prompt_multiplier"] == 3
        (result,) = run_dir.rglob("result_isl64_osl16_c2.json")
        assert json.loads(result.read_text())["completed"] == 6  # num_prompts_mult 3 x concurrency 2
    finally:
        subprocess.run(["scancel", job_id], env=env)
        local_cluster.wait_job(int(job_id))
