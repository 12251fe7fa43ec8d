"""Dynamo for real on the local SLURM cluster: the agent starts NATS and etcd, one prefill and one
decode Dynamo mocker, two Dynamo frontends and nginx in front of them; streamed requests through
nginx reach both frontends and arrive whole."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from srt_agent.sim.model_dir import write_model_dir

pytestmark = [pytest.mark.cluster, pytest.mark.dynamo, pytest.mark.slow]

VENV = Path(os.environ.get("SRT_DYNAMO_VENV", "/var/cache/srt-slurm/dynamo-venv-1.6.1"))


@pytest.fixture
def dynamo_venv() -> Path:
    if not (VENV / "bin" / "python").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Dynamo venv missing at {VENV} (scripts/dynamo-venv builds it)")
        pytest.skip(f"Dynamo venv missing at {VENV}; run scripts/dynamo-venv")
    return VENV


def test_nginx_two_frontends_prefill_decode_mockers(local_cluster, tmp_path, dynamo_venv):
    model = tmp_path / "model"
    write_model_dir(str(model))
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "default_partition": local_cluster.partition, "default_time_limit": "00:10:00",
        "gpus_per_node": local_cluster.gpus_per_node, "use_segment_sbatch_directive": False,
        "container_runtime": "none", "node_addresses": "loopback", "python": sys.executable,
        "dynamo_venv": str(dynamo_venv), "model_paths": {"mock": str(model)},
        "node_local_dir": str(tmp_path / "node-local")}))
    job = {"name": "dynamo-it", "model": {"path": "mock"},
           "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1,
                         "gpus_per_node": local_cluster.gpus_per_node},
           "backend": {"engine": "dynamo-mocker", "enable_multiple_frontends": True, "num_additional_frontends": 1},
           "benchmark": {"type": "manual"}, "health": {"worker_timeout_s": 120, "frontend_timeout_s": 120}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml"), "SLURM_CONF": str(local_cluster.slurm_conf)}
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "-f", "job.yaml"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = tmp_path / res.stdout.splitlines()[1].removeprefix("Logs: ").rstrip("/")
    try:
        deadline = time.monotonic() + 180
        status = {}
        while time.monotonic() < deadline:
            if (run_dir / "status.json").exists():
                status = json.loads((run_dir / "status.json").read_text())
                if status["state"] in ("ready", "failed", "succeeded", "cancelled"):
                    break
            time.sleep(0.5)
        assert status.get("state") == "ready", (status.get("failure"), status.get("message"))
        names = {c["name"] for c in status["components"]}
        assert names == {"nats", "etcd", "prefill-0", "decode-0", "frontend-0", "frontend-1", "nginx"}
        plan = json.loads((run_dir / "plan.json").read_text())
        assert plan["endpoint"]["kind"] == "nginx"
        # etcd/NATS state on node-local disk, not in the run directory; their logs in the run directory
        state = tmp_path / "node-local" / f"srt-{job_id}"
        assert plan["state_dir"] == str(state)
        assert (state / "etcd" / "member").is_dir() and (state / "nats").is_dir()
        assert not (run_dir / "infra" / "etcd").exists() and not (run_dir / "infra" / "nats").exists()
        assert any(p.name.endswith("_etcd.log") and p.stat().st_size for p in (run_dir / "logs").iterdir())
        # nginx: health-checked like every component, its granted file limit reported, no setrlimit failure
        comps = {c["name"]: c for c in status["components"]}
        assert comps["nginx"]["health"] == "healthy", comps["nginx"]
        files = comps["nginx"]["open_files"]
        assert files["worker_rlimit_nofile"] == files["soft"] == files["hard"] >= files["worker_connections"]
        assert "setrlimit" not in (run_dir / "nginx" / "error.log").read_text()
        assert f"worker_rlimit_nofile {files['soft']};" in (run_dir / "nginx" / "nginx.conf").read_text()
        url = f"http://127.0.0.1:{plan['endpoint']['port']}/v1/completions"
        with httpx.Client(timeout=60, trust_env=False) as client:
            for i in range(16):
                body = {"model": plan["served_model_name"], "prompt": f"hello {i}", "max_tokens": 12, "stream": True,
                        "stream_options": {"include_usage": True}}
                with client.stream("POST", url, json=body) as r:
                    assert r.status_code == 200
                    lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
                assert lines[-1] == "data: [DONE]"
                usage = [json.loads(ln[6:]) for ln in lines[:-1] if json.loads(ln[6:]).get("usage")]
                assert usage and usage[-1]["usage"]["completion_tokens"] == 12
        served = {}
        for f in plan["processes"]:
            if f["kind"] == "frontend":
                m = httpx.get(f"http://127.0.0.1:{f['port']}/metrics", trust_env=False).text
                served[f["name"]] = sum(float(line.rsplit(" ", 1)[1]) for line in m.splitlines()
                                        if line.startswith("dynamo_frontend_requests_total"))
        assert all(v >= 1 for v in served.values()) and len(served) == 2, served
    finally:
        subprocess.run(["scancel", job_id], env=env)
        local_cluster.wait_job(int(job_id))
    deadline = time.monotonic() + 60  # the agent removes the state at teardown
    while time.monotonic() < deadline and (tmp_path / "node-local" / f"srt-{job_id}").exists():
        time.sleep(0.5)
    assert not (tmp_path / "node-local" / f"srt-{job_id}").exists()
