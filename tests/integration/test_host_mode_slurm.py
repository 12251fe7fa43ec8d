"""`model.container: none` through real sbatch on the local SLURM cluster, whose cluster file says
pyxis (the cluster itself has no pyxis: one `--container-*` option and srun refuses the step). The
workers and the preflight run with the job's model.python (a wrapper that logs each start), and the
custom benchmark finds its endpoint in SRT_FRONTEND_URL and keeps its files in AIPERF_ARTIFACT_DIR."""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from test_apply_slurm import SlurmRun, model_dir  # noqa: F401  (model_dir is a fixture)

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

CLIENT = r'''
import json, os, urllib.request
url, art = os.environ["SRT_FRONTEND_URL"], os.environ["AIPERF_ARTIFACT_DIR"]
body = json.dumps({"model": os.environ["SRT_MODEL"], "prompt": "hi", "max_tokens": 3}).encode()
req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=30))
json.dump({"env": {k: os.environ[k] for k in ("SRT_FRONTEND_URL", "SRT_ENDPOINT_URL", "AIPERF_ARTIFACT_DIR")},
           "artifact_dir_existed": os.path.isdir(art), "tokens": answer["usage"]["completion_tokens"]},
          open(os.path.join(art, "env.json"), "w"))
os.makedirs(os.path.join(art, "trace"), exist_ok=True)
open(os.path.join(art, "trace", "profile_export.jsonl"), "w").write('{"request": 1}\n')
'''


def test_no_container_job_runs_on_the_host_with_the_named_python(local_cluster, tmp_path, model_dir):  # noqa: F811
    run = SlurmRun(tmp_path, local_cluster, model_dir, container_runtime="pyxis",
                   containers={"sglang": "/containers/sglang.sqsh"})
    calls = tmp_path / "python-calls.log"
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\necho "step=${{SLURM_JOB_NAME:-?}} $*" >> {calls}\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    path = run.job({"type": "custom", "command": [sys.executable, str(client)]}, name="host-mode",
                   resources={"agg_nodes": 1, "agg_workers": 1})
    job = yaml.safe_load(path.read_text())
    job["model"].update(container="none", python=str(python))
    path.write_text(yaml.safe_dump(job))
    res = run.apply(path)
    assert res.returncode == 0, res.stderr
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed", "cancelled"))
    assert status["state"] == "succeeded", status.get("failure")

    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["container_image"] is None and plan["container_mounts"] == []
    for p in plan["processes"]:
        pyxis = [a for a in p["launch"] if a.startswith(("--container", "--no-container"))]
        assert p["launch"][0] == "srun" and not pyxis, p["name"]
    worker = next(p for p in plan["processes"] if p["kind"] == "worker")
    assert worker["python"] == str(python) and worker["command"][0] == str(python)
    logged = calls.read_text().splitlines()
    assert any(line.startswith("step=srt-agg-0 ") and "srt_agent.sim" in line for line in logged), logged
    assert any(line.startswith("step=srt-preflight-python ") for line in logged), logged
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    (probe,) = [e for e in events if e.get("event") == "host_python"]
    assert probe["python"] == str(python) and probe["version"] == sys.version.split()[0]

    art = run_dir / "results" / "aiperf"
    seen = json.loads((art / "env.json").read_text())
    assert seen["tokens"] == 3 and seen["artifact_dir_existed"]
    assert seen["env"]["SRT_FRONTEND_URL"] == seen["env"]["SRT_ENDPOINT_URL"] == \
        f"http://{plan['endpoint']['address']}:{plan['endpoint']['port']}"
    assert seen["env"]["AIPERF_ARTIFACT_DIR"] == str(art)
    result = json.loads((run_dir / "results" / "custom_benchmark.json").read_text())
    assert result["exit_code"] == 0 and result["artifacts"]["dir"] == "results/aiperf"
    assert {f["path"] for f in result["artifacts"]["files"]} == {"results/aiperf/env.json",
                                                                  "results/aiperf/trace/profile_export.jsonl"}
