"""The real agent, local executor, simulated engine behind the real sglang router."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from agent_local_support import pid_alive, stop_agent

pytestmark = pytest.mark.slow


def _failure_recorded_at(run) -> float:
    from datetime import datetime

    deadline = time.monotonic() + 5  # status.json is written just before the event is appended
    while True:
        events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
        found = [e["ts"] for e in events if e["event"] == "failure"]
        if found or time.monotonic() > deadline:
            return datetime.fromisoformat(found[0]).timestamp()
        time.sleep(0.02)


def _pids(status: dict) -> list[int]:
    return [c["pid"] for c in status["components"] if c.get("pid")]


def test_disaggregated_sweep_succeeds_and_leaves_nothing_behind(local_run):
    job = local_run.job_file(benchmark={"type": "sa-bench", "isl": 64, "osl": 16, "concurrencies": [2, 8],
                                        "prompt_multiplier": 2, "warmup_multiplier": 1, "expected_itl_ms": 5})
    res = local_run.apply(job)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.splitlines()[0].startswith("Started local job ")
    assert res.stdout.splitlines()[1].startswith("Logs: logs/") and res.stdout.splitlines()[1].endswith("_1P_1D_" +
                                                                                                         res.stdout.splitlines()[1].rsplit("_1P_1D_", 1)[1])
    run = local_run.run_dir()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["failure"] is None
    assert status["benchmark"]["points_done"] == 2
    for c in (2, 8):
        point = json.loads((run / "results" / f"result_isl64_osl16_c{c}.json").read_text())
        assert point["completed"] == 2 * c and point["failed"] == 0 and point["total_output_tokens"] == 16 * 2 * c
        assert point["valid"] is True and point["expected_itl_ms"] == 5  # the job's ITL reached the loadgen
    assert "--expected-itl-ms 5 " in (run / "logs" / "benchmark.log").read_text()
    assert {c["name"] for c in status["components"]} == {"prefill-0", "decode-0", "router"}
    assert all(c["state"] == "stopped" for c in status["components"])
    assert not [p for p in _pids(status) if pid_alive(p)]
    plan = json.loads((run / "plan.json").read_text())
    assert {n["address"] for n in plan["nodes"]} == {"127.0.0.1"}
    assert plan["executor"] == "local"
    for p in plan["processes"]:  # what the launcher ran: the launch script that wrote the process's log
        assert p["launch"] == ["bash", str(run / "launch" / f"{p['name']}.sh")] and os.path.isfile(p["launch"][1])
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e["phase"] for e in events if e["event"] == "phase" and e["state"] == "done"][:6] == [
        "start", "preflight", "workers", "endpoint", "health", "benchmark"]


@pytest.mark.parametrize("sig,expect_code", [(signal.SIGKILL, -9), (signal.SIGTERM, 0)])
def test_worker_death_fails_the_job_within_2s(local_run, sig, expect_code):
    """A worker killed, or exiting 0 early (SIGTERM makes the simulator exit cleanly), fails the job."""
    proc = local_run.start(local_run.job_file())
    try:
        status = local_run.wait_status(lambda s: s["state"] == "ready")
        victim = next(c for c in status["components"] if c["name"] == "decode-0")
        killed_at = time.time()
        os.kill(victim["pid"], sig)
        failed = local_run.wait_status(lambda s: s["failure"] is not None, timeout=10)
        detected = _failure_recorded_at(local_run.run_dir()) - killed_at  # the agent's own clock, no polling
        assert detected < 2.0, f"failure recorded {detected:.2f}s after the kill"
        f = failed["failure"]
        assert f["component"] == "decode-0" and f["node"] == "local1" and f["exit_code"] == expect_code
        if expect_code == 0:
            assert "exited early with code 0" in f["message"]
        assert isinstance(f["log_tail"], list) and f["log_tail"]
        assert proc.wait(timeout=30) != 0
        final = json.loads((local_run.run_dir() / "status.json").read_text())
        assert final["state"] == "failed"
        assert not [p for p in _pids(final) if pid_alive(p)]
        # the monitoring commands tell the same story from the real run directory
        st = local_run.srtctl("status", local_run.run_dir().name, "--json")
        assert st.returncode == 1
        assert json.loads(st.stdout)["failure"]["component"] == "decode-0"
        logs = local_run.srtctl("logs", local_run.run_dir().name, "decode-0")
        assert logs.returncode == 0 and "[srt] node=local1" in logs.stdout
    finally:
        stop_agent(proc)


def test_sigterm_stops_gracefully_and_status_reads_are_never_partial(local_run):
    proc = local_run.start(local_run.job_file())
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader():
        nonlocal reads
        while not stop.is_set():
            try:
                path = local_run.run_dir() / "status.json"
                if path.exists():
                    json.loads(path.read_text())
                    reads += 1
            except AssertionError:
                pass
            except json.JSONDecodeError as exc:
                errors.append(str(exc))

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        status = local_run.wait_status(lambda s: s["state"] == "ready")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        stop.set()
        t.join()
        final = json.loads((local_run.run_dir() / "status.json").read_text())
        assert final["state"] == "cancelled"
        assert not [p for p in _pids(status) if pid_alive(p)]
        assert reads > 20 and not errors
    finally:
        stop.set()
        stop_agent(proc)


def test_resume_skips_finished_points(local_run):
    bench = {"type": "sa-bench", "isl": 32, "osl": 200, "concurrencies": [1, 2, 4], "prompt_multiplier": 2,
             "warmup_multiplier": 0}
    job = local_run.job_file(benchmark=bench)
    proc = local_run.start(job)
    try:
        local_run.wait_status(lambda s: s["benchmark"]["points_done"] >= 1, timeout=90)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        stop_agent(proc)
    run = local_run.run_dir()
    ledger = json.loads((run / "ledger.json").read_text())
    done_before = set(ledger["points"])
    assert "isl32_osl200_c1" in done_before and len(done_before) < 3
    first = (run / "results" / "result_isl32_osl200_c1.json").read_bytes()
    import subprocess
    import sys

    from launcher.cli import main  # noqa: F401  (import check only)

    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--resume", str(run)], cwd=local_run.workdir,
                         env=local_run.env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run / "results" / "result_isl32_osl200_c1.json").read_bytes() == first
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["benchmark"]["points_done"] == 3
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    skipped = {e["concurrency"] for e in events if e["event"] == "point_skipped"}
    assert skipped == {int(k.rsplit("_c", 1)[1]) for k in done_before}
    assert json.loads((run / "ledger.json").read_text())["attempts"].__len__() == 2
    # monitoring against the real resumed run: status, runs, report
    st = local_run.srtctl("status", run.name, "--json")
    assert st.returncode == 0 and json.loads(st.stdout)["benchmark"]["points_done"] == 3
    runs = local_run.srtctl("runs", "--json")
    assert runs.returncode == 0 and run.name in runs.stdout
    rep = local_run.srtctl("report", run.name)
    assert rep.returncode == 0
    for png in ("pareto.png", "latency.png"):
        assert (run / "report" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_refuses_a_changed_config(local_run):
    import subprocess
    import sys

    job = local_run.job_file(benchmark={"type": "sa-bench", "isl": 16, "osl": 4, "concurrencies": [1],
                                        "prompt_multiplier": 1, "warmup_multiplier": 0})
    assert local_run.apply(job).returncode == 0
    run = local_run.run_dir()
    resolved = json.loads((run / "resolved.json").read_text())
    resolved["job"]["benchmark"]["osl"] = 8
    (run / "resolved.json").write_text(json.dumps(resolved))
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--resume", str(run)], cwd=local_run.workdir,
                         env=local_run.env(), capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "config changed" in res.stderr and "--force" in res.stderr


def test_preflight_rejects_an_unknown_engine_flag_before_any_worker_starts(local_run):
    job = local_run.job_file(extra={"backend": {"sglang_config": {"prefill": {"mem-fraction-statc": 0.8}}}})
    res = local_run.apply(job, timeout=60)
    assert res.returncode != 0
    status = json.loads((local_run.run_dir() / "status.json").read_text())
    assert status["state"] == "failed"
    msg = status["failure"]["message"]
    assert "backend.sglang_config.prefill.mem-fraction-statc" in msg and "did you mean 'mem-fraction-static'" in msg
    assert status["components"] == []  # nothing was started
    assert status["phases"].get("preflight") == "running"


def test_sigusr1_early_warning_stops_at_a_safe_point(local_run):
    """SLURM's --signal=B:USR1@N reaches the agent (the batch script execs it)."""
    import subprocess

    proc = local_run.start(local_run.job_file())
    try:
        local_run.wait_status(lambda s: s["state"] == "ready")
        agent = subprocess.run(["pgrep", "-f", f"srt_agent {local_run.run_dir()}"], capture_output=True, text=True)
        pid = int(agent.stdout.split()[0])
        os.kill(pid, signal.SIGUSR1)
        proc.wait(timeout=30)
        final = json.loads((local_run.run_dir() / "status.json").read_text())
        assert final["state"] == "cancelled" and "SIGUSR1" in final["message"]
        events = [json.loads(line) for line in (local_run.run_dir() / "events.jsonl").read_text().splitlines()]
        assert any(e["event"] == "signal" and "SIGUSR1" in e["signal"] for e in events)
    finally:
        stop_agent(proc)


def test_secrets_reach_the_worker_but_no_file_of_the_run(local_run):
    secret = "hf_Zq9SuperSecretTokenValue"
    job = local_run.job_file(extra={"backend": {"decode_environment": {"HF_TOKEN": secret, "PLAIN_SETTING": "x1"}}})
    dry = local_run.srtctl("dry-run", "-f", str(job), "--local")
    assert dry.returncode == 0, dry.stderr
    assert secret not in dry.stdout + dry.stderr
    proc = local_run.start(job)
    try:
        status = local_run.wait_status(lambda s: s["state"] == "ready")
        decode = next(c for c in status["components"] if c["name"] == "decode-0")
        environ = open(f"/proc/{decode['pid']}/environ", "rb").read().split(b"\0")
        assert f"HF_TOKEN={secret}".encode() in environ and b"PLAIN_SETTING=x1" in environ
    finally:
        stop_agent(proc)
    leaked = []
    for root in (local_run.workdir / "logs", local_run.workdir / "dry-runs"):
        for path in root.rglob("*"):
            if path.is_file() and secret.encode() in path.read_bytes():
                leaked.append(str(path))
    assert not leaked


def test_results_sync_to_s3_when_the_job_ends(local_run, tmp_path):
    """cloud.sync_on_finish: the agent uploads the run directory to a real S3 server on loopback."""
    import socket
    import subprocess
    import sys

    import boto3
    import httpx
    import yaml

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    aws = {"AWS_ACCESS_KEY_ID": "testkey", "AWS_SECRET_ACCESS_KEY": "s3cr3t-Value-Never-Logged",
           "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **aws}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testkey",
                          aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])
        s3.create_bucket(Bucket="results")
        cfg_path = local_run.workdir / "srtslurm.yaml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["cloud"] = {"endpoint_url": endpoint, "bucket": "results", "prefix": "team/", "sync_on_finish": True}
        cfg_path.write_text(yaml.safe_dump(cfg))
        os.environ.update(aws)
        try:
            res = local_run.apply(local_run.job_file(benchmark={
                "type": "sa-bench", "isl": 16, "osl": 4, "concurrencies": [2], "prompt_multiplier": 1,
                "warmup_multiplier": 0}))
        finally:
            for k in aws:
                os.environ.pop(k, None)
        assert res.returncode == 0, res.stderr[-2000:]
        run = local_run.run_dir()
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="results").get("Contents", [])}
        assert f"team/{run.name}/results/result_isl16_osl4_c2.json" in keys
        remote_status = json.loads(s3.get_object(Bucket="results", Key=f"team/{run.name}/status.json")["Body"].read())
        assert remote_status["state"] == "succeeded"
        events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
        assert any(e["event"] == "synced" and e["uploaded"] > 0 for e in events)
        assert not [p for p in run.rglob("*") if p.is_file() and aws["AWS_SECRET_ACCESS_KEY"].encode() in p.read_bytes()]
        assert aws["AWS_SECRET_ACCESS_KEY"] not in res.stdout + res.stderr
    finally:
        moto.terminate()
        moto.wait(timeout=10)


def test_setup_script_runs_on_every_worker_node_before_the_worker(local_run):
    import yaml

    root = local_run.workdir / "checkout"
    (root / "configs").mkdir(parents=True)
    marks = local_run.workdir / "marks"
    marks.mkdir()
    (root / "configs" / "custom-setup.sh").write_text(
        f'#!/bin/bash\necho "setup ran" > {marks}/"$SLURMD_NODENAME-$$"\n')
    cfg_path = local_run.workdir / "srtslurm.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["srtctl_root"] = str(root)
    cfg_path.write_text(yaml.safe_dump(cfg))
    job = local_run.job_file(benchmark={"type": "sa-bench", "isl": 8, "osl": 2, "concurrencies": [1],
                                        "prompt_multiplier": 1, "warmup_multiplier": 0})
    bad = local_run.apply(job, "--setup-script", "../custom-setup.sh")
    assert bad.returncode == 2 and "--setup-script" in bad.stderr
    res = local_run.apply(job, "--setup-script", "custom-setup.sh")
    assert res.returncode == 0, res.stderr[-2000:]
    nodes = sorted(p.name.split("-")[0] for p in marks.iterdir())
    assert nodes == ["local0", "local1"]  # prefill and decode nodes; the router runs no setup script
    run = local_run.run_dir()
    assert json.loads((run / "metadata.json").read_text())["setup_script"] == "custom-setup.sh"
    log = (run / "logs" / "local1_decode-0.log").read_text()
    assert log.index("running setup script") < log.index("fired up")
