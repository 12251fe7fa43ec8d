"""Process lifecycle on the local SLURM cluster: a clean run stops every step gracefully (SIGTERM
to the task, the program's own shutdown, exit 0), in one grace period; SLURM's time-limit
warning (SIGUSR1 to the batch shell) stops at a safe point, the agent requeues its job, and the
requeued attempt finishes the sweep in the same run directory."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime

import pytest

try:
    from test_apply_slurm import SlurmRun, model_dir  # noqa: F401 - model_dir is a fixture
except ImportError:  # pragma: no cover
    from tests.integration.test_apply_slurm import SlurmRun, model_dir  # noqa: F401

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _events(run_dir) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]


def _ts(event: dict) -> float:
    return datetime.fromisoformat(event["ts"]).timestamp()


def test_clean_run_stops_every_step_gracefully_within_one_grace_period(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    grace = 8
    job = run.job({"type": "sa-bench", "isl": 16, "osl": 8, "concurrencies": [2], "prompt_multiplier": 1,
                   "warmup_multiplier": 0}, name="slurm-graceful")
    text = job.read_text().replace("frontend_timeout_s: 60", f"frontend_timeout_s: 60\n  shutdown_grace_s: {grace}")
    job.write_text(text)
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed"))
    assert status["state"] == "succeeded", status["failure"]
    comps = {c["name"]: c for c in status["components"]}
    assert set(comps) == {"prefill-0", "prefill-1", "decode-0", "router"}
    for name, c in comps.items():
        assert c["state"] == "stopped" and c["exit_code"] in (0, 143), (name, c)
        srun_log = (run_dir / "logs" / f"{name}.srun.log").read_text()
        assert "forcing job termination" not in srun_log and "Killed" not in srun_log, srun_log
    for name in ("prefill-0", "prefill-1", "decode-0"):
        log = (run_dir / "logs" / f"{comps[name]['node']}_{name}.log").read_text()
        assert "Shutting down." in log, log[-1500:]  # the simulated engine's own shutdown line
        assert comps[name]["exit_code"] == 0
    events = _events(run_dir)
    start = next(e for e in events if e["event"] == "phase" and e["phase"] == "teardown" and e["state"] == "running")
    done = next(e for e in events if e["event"] == "phase" and e["phase"] == "teardown" and e["state"] == "done")
    assert _ts(done) - _ts(start) < grace, "teardown took longer than one grace period"
    # reverse dependency order: the router got its SIGTERM and exited before any worker exited
    stopped = [e["component"] for e in events if e["event"] == "component" and e.get("state") == "stopped"]
    assert stopped.index("router") < min(stopped.index(w) for w in ("prefill-0", "prefill-1", "decode-0"))


def _job_fields(cluster, job_id: str) -> dict[str, str]:
    out = cluster.run("scontrol", "show", "job", "-o", job_id, check=True).stdout
    return dict(f.split("=", 1) for f in out.split() if "=" in f)


def test_time_limit_warning_stops_at_a_safe_point_and_the_requeued_attempt_resumes(local_cluster, tmp_path,
                                                                                      model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    job = run.job({"type": "sa-bench", "isl": 16, "osl": 150, "concurrencies": [1, 2], "prompt_multiplier": 2,
                   "warmup_multiplier": 0}, name="slurm-usr1")
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = run.run_dir(res.stdout)
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml"), "SLURM_CONF": str(local_cluster.slurm_conf)}
    run.wait_status(run_dir, lambda s: s["benchmark"]["points_done"] >= 1 or s["state"] == "failed")
    # what SLURM does at --signal=B:USR1@N: SIGUSR1 to the batch shell, which is the agent (exec)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], env=env, check=True)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("cancelled", "failed", "succeeded"), timeout=60)
    assert status["state"] == "cancelled", status
    assert "SIGUSR1" in status["message"]
    assert all(c["state"] == "stopped" for c in status["components"]), status["components"]
    done = json.loads((run_dir / "ledger.json").read_text())["points"]
    assert "isl16_osl150_c1" in done and len(done) < 2
    first_result = (run_dir / done["isl16_osl150_c1"]).read_bytes()
    assert any(e["event"] == "signal" and "SIGUSR1" in e["signal"] for e in _events(run_dir))
    # the agent requeues its own job (slurm.max_requeues defaults to 1; SLURM_RESTART_COUNT was unset)
    deadline = time.monotonic() + 60
    while not any(e["event"] == "requeued" for e in _events(run_dir)):
        assert time.monotonic() < deadline, _events(run_dir)[-5:]
        time.sleep(0.2)
    requeued = next(e for e in _events(run_dir) if e["event"] == "requeued")
    assert requeued["job_id"] == job_id and requeued["restarts"] == 1 and requeued["max_requeues"] == 1
    while True:
        fields = _job_fields(local_cluster, job_id)
        if fields["Restarts"] == "1" and fields["JobState"] in ("PENDING", "RUNNING"):
            break
        assert time.monotonic() < deadline, fields
        time.sleep(0.2)
    if fields["JobState"] == "PENDING":  # SLURM holds a requeued job back (begin time); let it start soon.
        # Not "now": slurmd compares a new credential with the old one's revocation in whole seconds, so a
        # start within the second of the requeue is killed ("Job credential revoked") and never runs.
        local_cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now+2", check=True)
    final = run.wait_status(run_dir, lambda s: s["job_id"] == job_id and s["state"] in ("succeeded", "failed")
                            and s["started_at"] > status["updated_at"], timeout=180)
    assert final["state"] == "succeeded", final["failure"]
    assert final["benchmark"]["points_done"] == 2
    assert _job_fields(local_cluster, job_id)["Restarts"] == "1"
    # the second attempt ran in the same run directory and did not measure the finished point again
    events = _events(run_dir)
    second = events[next(i for i, e in enumerate(events) if e["event"] == "requeued"):]
    assert any(e["event"] == "resumed" and e["points_done"] == ["isl16_osl150_c1"] for e in second), second[:5]
    assert [e["concurrency"] for e in second if e["event"] == "point_skipped"] == [1]
    assert [e["concurrency"] for e in second if e["event"] == "point_start"] == [2]
    assert (run_dir / done["isl16_osl150_c1"]).read_bytes() == first_result
    assert set(json.loads((run_dir / "ledger.json").read_text())["points"]) == {"isl16_osl150_c1", "isl16_osl150_c2"}
    local_cluster.wait_job(int(job_id), timeout=60)
