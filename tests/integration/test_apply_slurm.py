"""`srtctl apply` through real sbatch on the local SLURM cluster: the agent runs the plan with srun
steps on the expected nodes and GPUs, scancel leaves nothing behind, and sbatch's compatibility
errors come back with the cluster-file setting that fixes them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

try:
    from cluster_fixtures import LocalCluster, skip_or_fail, start_cluster, stop_cluster, unavailable_reason
except ImportError:  # pragma: no cover
    from tests.cluster_fixtures import (
        LocalCluster,
        skip_or_fail,
        start_cluster,
        stop_cluster,
        unavailable_reason,
    )

from srt_agent.sim.model_dir import write_model_dir

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _pid_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


class SlurmRun:
    def __init__(self, workdir: Path, cluster: LocalCluster, model_dir: Path, **cluster_overrides) -> None:
        self.workdir = workdir
        self.cluster = cluster
        self.gpus = cluster.gpus_per_node or 4  # a GPU-less cluster still gets a job asking for GPUs
        cfg = {"default_partition": cluster.partition, "default_account": "test-account",
               "default_time_limit": "00:10:00", "gpus_per_node": self.gpus,
               "use_segment_sbatch_directive": False, "container_runtime": "none", "node_addresses": "loopback",
               "python": sys.executable, "model_paths": {"sim-model": str(model_dir)}}
        cfg.update(cluster_overrides)
        (workdir / "srtslurm.yaml").write_text(yaml.safe_dump(cfg))

    def job(self, benchmark: dict, name: str = "slurm-it", resources: dict | None = None,
            environment: dict | None = None) -> Path:
        job = {"name": name, "model": {"path": "sim-model"},
               "resources": {**(resources or {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 2,
                                              "decode_workers": 1}), "gpus_per_node": self.gpus},
               "backend": {"engine": "sim", "use_sglang_router": True,
                           "sim": {"startup_s": 0.5, "decode_step_ms": 5, "decode_step_ms_per_request": 0.0}},
               "benchmark": benchmark, "health": {"worker_timeout_s": 90, "frontend_timeout_s": 60}}
        if environment:
            job["backend"]["decode_environment"] = environment
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(job))
        return path

    def apply(self, job: Path, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "SRTSLURM_CONFIG": str(self.workdir / "srtslurm.yaml"),
               "SLURM_CONF": str(self.cluster.slurm_conf)}
        return subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "-f", str(job), *args],
                              cwd=self.workdir, env=env, capture_output=True, text=True, timeout=120)

    def run_dir(self, stdout: str) -> Path:
        line = [ln for ln in stdout.splitlines() if ln.startswith("Logs: ")][0]
        return self.workdir / line[len("Logs: "):].rstrip("/")

    def wait_status(self, run_dir: Path, predicate, timeout: float = 150) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = json.loads((run_dir / "status.json").read_text())
                if predicate(last):
                    return last
            except FileNotFoundError:
                pass
            time.sleep(0.25)
        slurm_out = list(run_dir.glob("slurm-*.out"))
        tail = slurm_out[0].read_text()[-3000:] if slurm_out else "(no slurm output)"
        raise AssertionError(f"status condition not reached; last status: {last}\nslurm output:\n{tail}")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "sim"
    write_model_dir(str(path))
    return path


def test_apply_runs_the_plan_on_the_expected_nodes_and_gpus(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    res = run.apply(run.job({"type": "sa-bench", "isl": 32, "osl": 8, "concurrencies": [2],
                             "prompt_multiplier": 2, "warmup_multiplier": 1}), "--tags", "it,slurm")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    job_id = lines[0].removeprefix("Submitted batch job ")
    assert job_id.isdigit()
    assert lines[1].startswith(f"Logs: logs/{job_id}_2P_1D_")
    run_dir = run.run_dir(res.stdout)
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["job_id"] == job_id and meta["tags"] == ["it", "slurm"] and meta["executor"] == "slurm"
    for name in ("job.yaml", "resolved.json", "job.sbatch"):
        assert (run_dir / name).is_file()
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed"))
    assert status["state"] == "succeeded", status["failure"]
    assert status["executor"] == "slurm" and status["job_id"] == job_id
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [n["name"] for n in plan["nodes"]] == ["node1", "node2"]
    expected = {"prefill-0": ("node1", "0,1"), "prefill-1": ("node1", "2,3"), "decode-0": ("node2", "0,1,2,3")}
    for name, (node, gpus) in expected.items():
        log = (run_dir / "logs" / f"{node}_{name}.log").read_text()
        assert f"[srt] node={node} CUDA_VISIBLE_DEVICES={gpus}" in log, log[:500]
        comp = next(c for c in status["components"] if c["name"] == name)
        assert comp["step"] == f"srt-{name}" and comp["node"] == node
        launch = next(p["launch"] for p in plan["processes"] if p["name"] == name)
        assert launch[0] == "srun" and f"--nodelist={node}" in launch and f"--job-name={comp['step']}" in launch
        assert launch[-2] == "bash" and Path(launch[-1]).resolve() == (run_dir / "launch" / f"{name}.sh").resolve()
    assert plan["executor"] == "slurm"
    point = json.loads((run_dir / "results" / "result_isl32_osl8_c2.json").read_text())
    assert point["completed"] == 4 and point["total_output_tokens"] == 32
    # time to ready: the queue wait from SLURM's own SubmitTime/StartTime, every step timed
    ttr = status["time_to_ready"]
    assert ttr["queue_source"] == "slurm" and 0 <= ttr["queue_wait_s"] < 60
    assert set(ttr["steps_s"]) >= {"node_probe", "preflight", "workers", "endpoint", "registration",
                                   "smoke_request"}
    assert ttr["steps_s"]["node_probe"] > 0  # one srun step on every node
    assert ttr["agent_to_ready_s"] <= ttr["submit_to_ready_s"]
    decode = next(c for c in status["components"] if c["name"] == "decode-0")["time_to_ready"]
    assert decode["process_start_s"] > 0 and decode["start_to_ready_s"] >= decode["process_start_s"]
    assert local_cluster.wait_job(int(job_id)) == "COMPLETED"


FOUR_NODES = {"prefill_nodes": 2, "decode_nodes": 2, "prefill_workers": 2, "decode_workers": 2}


def test_2p2d_on_four_nodes_reaches_ready_and_scancel_leaves_no_process_behind(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    res = run.apply(run.job({"type": "manual"}, name="slurm-cancel", resources=FOUR_NODES))
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("ready", "failed"))
    assert status["state"] == "ready", status["failure"]
    nodes = {c["name"]: c["node"] for c in status["components"]}
    assert nodes == {"prefill-0": "node1", "prefill-1": "node2", "decode-0": "node3", "decode-1": "node4",
                     "router": "node1"}
    pids = [c["pid"] for c in status["components"] if c.get("pid")]
    assert len(pids) == 5
    subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": str(local_cluster.slurm_conf)}, check=True)
    local_cluster.wait_job(int(job_id))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.2)
    assert not [p for p in pids if _pid_alive(p)]
    out = subprocess.run(["pgrep", "-f", f"srt_agent {run_dir}"], capture_output=True, text=True)
    assert out.stdout.strip() == ""
    sim = subprocess.run(["pgrep", "-f", f"srt_agent.sim .*{model_dir}"], capture_output=True, text=True)
    assert sim.stdout.strip() == ""


def test_killed_worker_is_attributed_within_2s_on_the_cluster(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    res = run.apply(run.job({"type": "manual"}, name="slurm-kill", resources=FOUR_NODES))
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("ready", "failed"))
    assert status["state"] == "ready", status["failure"]
    # the srun step's task is the launch script, which exec'd the simulator: find that process
    victim = subprocess.run(["pgrep", "-f", f"srt_agent.sim --model-path {model_dir} .*--disaggregation-mode decode"],
                            capture_output=True, text=True).stdout.split()
    assert victim
    pid = int(victim[0])
    cmdline = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    node = next(v.split(b"=", 1)[1].decode() for v in cmdline if v.startswith(b"SLURMD_NODENAME="))
    t0 = time.time()
    os.kill(pid, 9)
    failed = run.wait_status(run_dir, lambda s: s["failure"] is not None, timeout=10)
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    recorded = datetime.fromisoformat(next(e["ts"] for e in events if e["event"] == "failure")).timestamp()
    assert recorded - t0 < 2.0, f"failure recorded {recorded - t0:.2f}s after the kill (agent's clock)"
    assert failed["failure"]["node"] == node and failed["failure"]["component"].startswith("decode-")
    assert local_cluster.wait_job(int(job_id)) in ("FAILED", "COMPLETED", "CANCELLED")
    final = json.loads((run_dir / "status.json").read_text())
    assert final["state"] == "failed"


def test_segment_error_names_the_setting_and_the_job_submits_without_it(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir, use_segment_sbatch_directive=True)
    job = run.job({"type": "manual"}, name="segment")
    res = run.apply(job)
    assert res.returncode == 1
    assert "unrecognized option '--segment" in res.stderr
    assert "use_segment_sbatch_directive: false" in res.stderr and "srtslurm.yaml" in res.stderr
    assert not (tmp_path / "logs").exists() or not [p for p in (tmp_path / "logs").iterdir()]
    run = SlurmRun(tmp_path, local_cluster, model_dir, use_segment_sbatch_directive=False)
    res = run.apply(job, )
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": str(local_cluster.slurm_conf)})
    local_cluster.wait_job(int(job_id))


@pytest.fixture(scope="module")
def gpuless() -> LocalCluster:
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    cluster = start_cluster(nodes=2, gpus=0)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def test_gres_error_names_the_setting_and_the_job_submits_without_it(gpuless, tmp_path, model_dir):
    run = SlurmRun(tmp_path, gpuless, model_dir)
    job = run.job({"type": "manual"}, name="gres")
    res = run.apply(job)
    assert res.returncode == 1
    assert "Invalid generic resource (gres) specification" in res.stderr
    assert "use_gpus_per_node_directive: false" in res.stderr
    run = SlurmRun(tmp_path, gpuless, model_dir, use_gpus_per_node_directive=False)
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.splitlines()[0].split()[-1]
    subprocess.run(["scancel", job_id], env={**os.environ, "SLURM_CONF": str(gpuless.slurm_conf)})
    gpuless.wait_job(int(job_id))


def test_aggregated_router_path(local_cluster, tmp_path, model_dir):
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    job = {"name": "agg-it", "model": {"path": "sim-model"},
           "resources": {"agg_nodes": 2, "agg_workers": 2, "gpus_per_node": run.gpus},
           "backend": {"engine": "sim", "use_sglang_router": True,
                       "sim": {"startup_s": 0.2, "decode_step_ms": 5, "decode_step_ms_per_request": 0.0}},
           "benchmark": {"type": "sa-bench", "isl": 16, "osl": 8, "concurrencies": [4], "prompt_multiplier": 4,
                         "warmup_multiplier": 0}}
    path = tmp_path / "agg.yaml"
    path.write_text(yaml.safe_dump(job))
    res = run.apply(path)
    assert res.returncode == 0, res.stderr
    assert "_2A_" in res.stdout.splitlines()[1]
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed"))
    assert status["state"] == "succeeded", status["failure"]
    router = json.loads((run_dir / "plan.json").read_text())
    cmd = next(p["command"] for p in router["processes"] if p["kind"] == "router")
    assert "--worker-urls" in cmd and "--pd-disaggregation" not in cmd
    point = json.loads((run_dir / "results" / "result_isl16_osl8_c4.json").read_text())
    assert point["completed"] == 16 and point["failed"] == 0
    served = [json.loads(x)["event"] for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert "point_done" in served
    for w in ("agg-0", "agg-1"):
        log = next((run_dir / "logs").glob(f"*_{w}.log")).read_text()
        assert "POST /v1/completions" in log or "completions" in log or "[srt]" in log


def test_scancel_mid_sweep_then_resume_through_sbatch(local_cluster, tmp_path, model_dir):
    """Kill the job mid-sweep (scancel: SIGTERM to the agent), then `srtctl apply --resume RUN_DIR`
    resubmits into the same run directory: finished points are kept and skipped."""
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    job = run.job({"type": "sa-bench", "isl": 16, "osl": 150, "concurrencies": [1, 2, 3], "prompt_multiplier": 2,
                   "warmup_multiplier": 0}, name="slurm-resume",
                  environment={"HF_TOKEN": "hf_resumeSecretValue123"})
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    first_id = res.stdout.splitlines()[0].split()[-1]
    run_dir = run.run_dir(res.stdout)
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml"), "SLURM_CONF": str(local_cluster.slurm_conf)}
    run.wait_status(run_dir, lambda s: s["benchmark"]["points_done"] >= 1 or s["state"] == "failed")
    subprocess.run(["scancel", first_id], env=env, check=True)
    local_cluster.wait_job(int(first_id))
    done = set(json.loads((run_dir / "ledger.json").read_text())["points"])
    assert "isl16_osl150_c1" in done and len(done) < 3
    kept = (run_dir / "results" / "result_isl16_osl150_c1.json").read_bytes()
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--resume", str(run_dir)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    second_id = res.stdout.splitlines()[0].split()[-1]
    assert second_id != first_id
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed") and s["job_id"] == second_id)
    assert status["state"] == "succeeded", status["failure"]
    assert status["benchmark"]["points_done"] == 3
    assert (run_dir / "results" / "result_isl16_osl150_c1.json").read_bytes() == kept
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    assert {e["concurrency"] for e in events if e["event"] == "point_skipped"} == {int(k.rsplit("_c", 1)[1]) for k in done}
    assert (run_dir / f"slurm-{second_id}.out").is_file()
    # the secret reached the resumed workers (from the original job file), and no file of the run
    log = (run_dir / "launch" / "decode-0.sh").read_text()
    assert "hf_resumeSecretValue123" not in log and 'HF_TOKEN="${HF_TOKEN}"' in log
    assert not [p for p in run_dir.rglob("*") if p.is_file() and b"hf_resumeSecretValue123" in p.read_bytes()]
