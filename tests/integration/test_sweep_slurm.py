"""Sweeps on the local SLURM cluster with the simulated engine: a 2 x 2 grid in mode jobs (one
sbatch per member, every member benchmarked with its own values)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

try:
    from test_apply_slurm import SlurmRun, model_dir  # noqa: F401  (model_dir is a fixture)
except ImportError:  # pragma: no cover
    from tests.integration.test_apply_slurm import SlurmRun, model_dir  # noqa: F401

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

BENCH = {"type": "sa-bench", "isl": 32, "osl": 8, "concurrencies": [2], "prompt_multiplier": 2,
         "warmup_multiplier": 1}
GRID = {"resources.decode_workers": [1, 2], "backend.sim.decode_step_ms": [2, 4]}


def sweep_job(run: SlurmRun, mode: str, name: str = "sw") -> tuple[SlurmRun, object]:
    path = run.job(BENCH, name=name, resources={"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1,
                                                "decode_workers": 1})
    data = yaml.safe_load(path.read_text())
    data["sweep"] = {"mode": mode, "grid": GRID}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def srtctl(run: SlurmRun, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SRTSLURM_CONFIG": str(run.workdir / "srtslurm.yaml"),
           "SLURM_CONF": str(run.cluster.slurm_conf)}
    return subprocess.run([sys.executable, "-m", "launcher.cli", *args], cwd=run.workdir, env=env,
                          capture_output=True, text=True, timeout=120)


def test_grid_2x2_mode_jobs(local_cluster, tmp_path, model_dir):  # noqa: F811
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    res = run.apply(sweep_job(run, "jobs"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    job_ids = [ln.split()[-1] for ln in lines if ln.startswith("Submitted batch job ")]
    assert len(job_ids) == 4 and len(set(job_ids)) == 4
    sweep_id = lines[-1].split()[1].rstrip(":")
    info = json.loads((tmp_path / "logs" / "sweeps" / sweep_id / "sweep.json").read_text())
    assert [m["job_id"] for m in info["members"]] == job_ids
    for m in info["members"]:
        run_dir = tmp_path / "logs" / m["run_dir"].split("/logs/")[1]
        status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed"), timeout=240)
        assert status["state"] == "succeeded", status["failure"]
        plan = json.loads((run_dir / "plan.json").read_text())
        decode = [p for p in plan["processes"] if p["kind"] == "worker" and p["role"] == "decode"]
        assert len(decode) == m["values"]["resources.decode_workers"]
        job = json.loads((run_dir / "resolved.json").read_text())["job"]
        assert job["backend"]["sim"]["decode_step_ms"] == m["values"]["backend.sim.decode_step_ms"]
        point = json.loads((run_dir / "results" / "result_isl32_osl8_c2.json").read_text())
        assert point["completed"] == 4
    for j in job_ids:
        assert local_cluster.wait_job(int(j)) == "COMPLETED"


def _ledger(member_dir) -> dict:
    try:
        return json.loads((member_dir / "ledger.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def test_grid_2x2_mode_allocation_killed_in_second_member_and_resumed(local_cluster, tmp_path, model_dir):  # noqa: F811
    import time

    run = SlurmRun(tmp_path, local_cluster, model_dir)
    job = sweep_job(run, "allocation", name="al")
    data = yaml.safe_load(job.read_text())
    # points long enough (~1-2 s each) that the kill lands inside the second member
    data["benchmark"].update(concurrencies=[2, 4, 8], osl=128, prompt_multiplier=4)
    job.write_text(yaml.safe_dump(data, sort_keys=False))
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("Submitted batch job ")]) == 1  # one allocation
    job_id = lines[0].split()[-1]
    sweep_dir = run.run_dir(res.stdout)
    info = json.loads((sweep_dir / "sweep.json").read_text())
    assert info["allocation_nodes"] == 2 and len(info["members"]) == 4
    assert "#SBATCH --nodes=2" in (sweep_dir / "job.sbatch").read_text()
    first, second = (sweep_dir / m["name"] for m in info["members"][:2])
    # wait until the second member has measured its first point, then kill the allocation
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(_ledger(second).get("points", {})) < 1:
        time.sleep(0.1)
    assert _ledger(second).get("points"), (sweep_dir / f"slurm-{job_id}.out").read_text()[-3000:]
    subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": str(local_cluster.slurm_conf)}, check=True)
    local_cluster.wait_job(int(job_id))
    assert "benchmark" in _ledger(first)["phases"] and "benchmark" not in _ledger(second)["phases"]
    done_before = dict(_ledger(second)["points"])
    mtimes = {p: p.stat().st_mtime_ns for d in (first, second) for p in (d / "results").glob("result_*.json")}
    assert mtimes and not (sweep_dir / info["members"][2]["name"] / "ledger.json").exists()

    res = srtctl(run, "apply", "--resume", str(sweep_dir))
    assert res.returncode == 0, res.stderr
    job2 = res.stdout.splitlines()[0].split()[-1]
    assert local_cluster.wait_job(int(job2), timeout=300) == "COMPLETED"
    for m in info["members"]:
        d = sweep_dir / m["name"]
        status = json.loads((d / "status.json").read_text())
        assert status["state"] == "succeeded", (m["name"], status.get("failure"))
        assert len(_ledger(d)["points"]) == 3
    # nothing measured twice: the first member untouched, the second kept its finished points
    assert len(_ledger(first)["attempts"]) == 1 and len(_ledger(second)["attempts"]) == 2
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    assert set(done_before) < set(_ledger(second)["points"])
    out = (sweep_dir / f"slurm-{job2}.out").read_text()
    assert f"{info['members'][0]['name']}: already finished, skipped" in out
    # looking at the sweep
    sweep_id = lines[2].split()[1].rstrip(":")
    res = srtctl(run, "status", sweep_id, "--json")
    assert res.returncode == 0, res.stderr
    assert [m["state"] for m in json.loads(res.stdout)["members"]] == ["succeeded"] * 4
    res = srtctl(run, "runs", "--sweep", sweep_id)
    assert res.returncode == 0 and "dw=2, dsm=4" in res.stdout, res.stdout + res.stderr
    res = srtctl(run, "report", "--sweep", sweep_id)
    assert res.returncode == 0, res.stderr
    md = (tmp_path / "reports" / sweep_id / "report.md").read_text()
    assert all(f"dw={w}, dsm={s}" in md for w in (1, 2) for s in (2, 4))


@pytest.mark.dynamo
def test_allocation_sweep_keeps_nats_and_etcd_up_across_members(local_cluster, tmp_path):
    """Dynamo mocker members behind frontends: NATS and etcd are started once for the allocation;
    each member's workers and frontends are its own."""
    from pathlib import Path

    from srt_agent.sim.model_dir import write_model_dir

    venv = Path(os.environ.get("SRT_DYNAMO_VENV", "/var/cache/srt-slurm/dynamo-venv-1.6.1"))
    if not (venv / "bin" / "python").exists():
        pytest.skip(f"Dynamo venv missing at {venv}; run scripts/dynamo-venv")
    model = tmp_path / "model"
    write_model_dir(str(model))
    run = SlurmRun(tmp_path, local_cluster, model, dynamo_venv=str(venv))
    job = {"name": "dyn", "model": {"path": "sim-model"},
           "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1,
                         "gpus_per_node": run.gpus},
           "backend": {"engine": "dynamo-mocker", "enable_multiple_frontends": False},
           "benchmark": BENCH, "health": {"worker_timeout_s": 120, "frontend_timeout_s": 120},
           "sweep": {"mode": "allocation", "grid": {"resources.decode_workers": [1, 2]}}}
    path = tmp_path / "dyn.yaml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    res = run.apply(path)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    sweep_dir = run.run_dir(res.stdout)
    assert local_cluster.wait_job(int(job_id), timeout=400) == "COMPLETED", \
        (sweep_dir / f"slurm-{job_id}.out").read_text()[-3000:]
    info = json.loads((sweep_dir / "sweep.json").read_text())
    first, second = (sweep_dir / m["name"] for m in info["members"])
    for d in (first, second):
        status = json.loads((d / "status.json").read_text())
        assert status["state"] == "succeeded", status.get("failure")
        assert json.loads((d / "results" / "result_isl32_osl8_c2.json").read_text())["completed"] == 4
    shared = json.loads((sweep_dir / "status.json").read_text())
    assert {c["name"] for c in shared["components"]} == {"nats", "etcd"}
    assert all(c["state"] == "stopped" for c in shared["components"])
    urls = {json.loads((d / "plan.json").read_text())["nats_url"] for d in (first, second)}
    assert len(urls) == 1
    out = (sweep_dir / f"slurm-{job_id}.out").read_text()
    assert out.count("up for the sweep") == 1
    # the second member started no NATS/etcd of its own
    events = [json.loads(x) for x in (second / "events.jsonl").read_text().splitlines()]
    started = {e.get("component") for e in events if e.get("event") == "component" and e.get("state") == "starting"}
    assert "nats" not in started and "etcd" not in started and "decode-1" in started
    # the shared etcd/NATS state belongs to the sweep: no member removes it while etcd still runs
    for d in (first, second):
        member_events = [json.loads(x) for x in (d / "events.jsonl").read_text().splitlines()]
        assert not [e for e in member_events if e.get("event") == "state_removed"]
    assert not Path(json.loads((first / "plan.json").read_text())["state_dir"]).exists()  # removed at the end
