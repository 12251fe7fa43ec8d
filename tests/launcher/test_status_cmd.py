"""`srtctl status` against run directories written by the agent's own writers (run_fixtures)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import run_fixtures as rf

from launcher import run_lookup
from launcher.cli import main
from launcher.status_cmd import status_json
from srt_agent.errors import RunNotFound

pytestmark = pytest.mark.usefixtures("no_slurm")


def status(capsys, logs: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["status", "--logs-dir", str(logs), *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def status_data(capsys, logs: Path, ref: str) -> dict:
    _, out, _ = status(capsys, logs, ref, "--json")
    return json.loads(out)


# ---------------------------------------------------------------------------- finding runs


def test_find_run_by_job_id_prefix_name_and_path(logs):
    ok = rf.run_dir(logs, "succeeded")
    assert run_lookup.find_run("1001", logs) == ok
    assert run_lookup.find_run(ok.name, logs) == ok
    assert run_lookup.find_run("1001_1P", logs) == ok
    assert run_lookup.find_run(str(ok) + "/", logs) == ok
    rel = os.path.relpath(ok)
    assert run_lookup.find_run(rel, logs) == ok


def test_find_run_errors_name_the_problem(logs):
    with pytest.raises(RunNotFound, match="matches .* runs"):
        run_lookup.find_run("100", logs)
    with pytest.raises(RunNotFound, match="no run '4242'"):
        run_lookup.find_run("4242", logs)
    with pytest.raises(RunNotFound, match="not a run directory"):
        run_lookup.find_run(str(logs / "nope"), logs)


def test_unknown_run_exits_1_with_message(capsys, logs):
    rc, _, err = status(capsys, logs, "999999")
    assert rc == 1
    assert "no run '999999'" in err and "srtctl runs" in err


def test_resumed_slurm_run_is_found_by_its_new_job_id(tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "resumed")
    data = json.loads((run / "status.json").read_text())
    data["job_id"] = "2044"  # the requeued job's id, written by the agent of the second attempt
    (run / "status.json").write_text(json.dumps(data))
    assert run_lookup.find_run("2044", logs) == run


def test_logs_dir_comes_from_the_cluster_file(capsys, logs, tmp_path, monkeypatch):
    (tmp_path / "srtslurm.yaml").write_text(f"logs_dir: {logs}\n")
    monkeypatch.setenv("SRTSLURM_CONFIG", str(tmp_path / "srtslurm.yaml"))
    assert main(["status", "1001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "1001"


# ---------------------------------------------------------------------------- one run


def test_failed_run_shows_cause_component_and_log_tail(capsys, logs):
    rc, out, _ = status(capsys, logs, "1002")
    assert rc == 1
    assert "state failed" in out
    assert "decode-0 on local1 exited with code 1" in out
    assert "stopped during phase: workers" in out
    assert "RuntimeError: CUDA out of memory (simulated)" in out
    assert "srtctl logs 1002_1P_1D_20260111_090000 decode-0" in out
    assert "workers ✗" in out
    table = out[out.index("Components"):out.index("Failure")]
    assert "decode-0" in table and "failed" in table and "down" in table


def test_failed_run_tail_option_limits_lines(capsys, logs):
    _, out, _ = status(capsys, logs, "1002", "--tail", "2")
    assert "last 2 lines" in out
    assert "Traceback (most recent call last):" in out
    assert "loading weights shard 5/8" not in out


def test_failed_run_json(capsys, logs):
    data = status_data(capsys, logs, "1002")
    assert data["state"] == "failed"
    assert data["failed_phase"] == "workers"
    assert data["failure"]["component"] == "decode-0"
    assert data["failure"]["exit_code"] == 1
    assert data["failure"]["log_tail"][-1] == "RuntimeError: CUDA out of memory (simulated)"
    states = {c["name"]: (c["state"], c["health"]) for c in data["components"]}
    assert states == {"prefill-0": ("stopped", "healthy"), "decode-0": ("failed", "down")}
    assert data["metadata"]["tags"] == ["sim"]
    assert data["status"]["schema_version"] == 1


def test_succeeded_run_shows_sweep(capsys, logs):
    rc, out, _ = status(capsys, logs, "1001")
    assert rc == 0
    assert "state succeeded" in out
    assert "4 of 4 points measured" in out
    assert "Failure" not in out
    ready = next(line for line in out.splitlines() if line.startswith("time to ready: "))
    assert " s to ready (queue " in ready and "node probe " in ready and "workers " in ready
    assert "slowest " in out and "start to first log line" in out
    sweep = out[out.index("Benchmark sweep"):]
    rows = [line.split() for line in sweep.splitlines() if line.strip()[:2].strip().isdigit()]
    assert [r[0] for r in rows] == ["1", "4", "16", "64"]
    data = status_data(capsys, logs, "1001")
    ttr = data["time_to_ready"]
    assert ttr["queue_source"] == "local" and ttr["queue_wait_s"] >= 0
    assert ttr["agent_to_ready_s"] <= ttr["submit_to_ready_s"]
    decode = next(c for c in data["components"] if c["name"] == "decode-0")["time_to_ready"]
    assert decode["start_to_ready_s"] == pytest.approx(decode["process_start_s"] + decode["engine_ready_s"], abs=0.002)
    results = {json.loads(p.read_text())["max_concurrency"]: json.loads(p.read_text())
               for p in (rf.run_dir(logs, "succeeded") / "results").glob("result_*.json")}
    for p in data["benchmark"]["points"]:
        r = results[p["concurrency"]]
        assert p["output_tok_s"] == r["output_throughput"]
        assert p["output_tok_s_per_gpu"] == pytest.approx(r["output_throughput"] / 8)
        assert p["tok_s_per_user"] == pytest.approx(1000 / r["mean_tpot_ms"])


def test_running_run_shows_progress_then_agent_gone(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "running")
    rf.touch(run)
    data = status_data(capsys, logs, "1003")
    assert data["state"] == "benchmarking" and data["agent_gone"] is None
    assert data["benchmark"]["points_done"] == 2 and data["benchmark"]["current"] == 16
    assert [p["concurrency"] for p in data["benchmark"]["points"]] == [1, 4]
    rc, out, _ = status(capsys, logs, "1003")
    assert rc == 0 and "measuring concurrency 16" in out and "benchmark …" in out
    assert len([c for c in data["components"] if c["kind"] == "frontend"]) == 10

    old = time.time() - 3600
    os.utime(run / "status.json", (old, old))
    data = status_data(capsys, logs, "1003")
    assert "no agent process" in data["agent_gone"]
    assert data["failed_phase"] == "benchmark"
    # the first srtctl command that noticed it recorded the run as failed, cause "agent died"
    assert data["state"] == "failed" and data["failure"]["message"].startswith("agent died: no agent process")
    rc, out, _ = status(capsys, logs, "1003")
    assert rc == 1 and "agent died" in out and "stopped while measuring concurrency 16" in out
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_local_agent_pid_gone_is_noticed_at_once(capsys, tmp_path_factory, tmp_path):
    """status.json names an agent pid on this machine that is not (any more) the agent: failed at
    once, without waiting for status.json to go stale."""
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "running")
    data = json.loads((run / "status.json").read_text())
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    data.update(agent_pid=proc.pid, agent_host=socket.gethostname())
    (run / "status.json").write_text(json.dumps(data))
    rf.touch(run)
    out = status_data(capsys, logs, "1003")
    assert out["state"] == "failed" and f"agent process {proc.pid}" in out["agent_gone"]
    assert out["failure"]["component"] == "agent" and "agent died" in out["failure"]["message"]


def test_local_agent_process_keeps_a_quiet_run_alive(tmp_path_factory, tmp_path):
    """An agent process whose argv names the run dir counts as alive however old status.json is."""
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "running")
    old = time.time() - 3600
    os.utime(run / "status.json", (old, old))
    fake = tmp_path / "srt_agent"  # a process with the agent's argv shape: `... srt_agent RUN_DIR`
    fake.write_text("import time; time.sleep(30)\n")
    proc = subprocess.Popen([sys.executable, str(fake), "srt_agent", str(run)])
    try:
        time.sleep(0.2)
        assert run_lookup.load_view(run).liveness is None
    finally:
        proc.kill()
        proc.wait()
    assert run_lookup.load_view(run).liveness is not None


def test_resumed_run_shows_attempt_and_all_points(capsys, logs):
    data = status_data(capsys, logs, "1004")
    assert data["state"] == "succeeded" and data["attempts"] == 2
    assert [p["concurrency"] for p in data["benchmark"]["points"]] == [1, 4, 16, 64]
    _, out, _ = status(capsys, logs, "1004")
    assert "attempt 2 (resumed)" in out
    events = [json.loads(line) for line in (rf.run_dir(logs, "resumed") / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert "resumed" in kinds and kinds.count("point_skipped") == 2
    assert kinds.index("signal") < kinds.index("resumed")


def test_pending_slurm_run_without_status_json(capsys, logs):
    rc, out, _ = status(capsys, logs, "1005")
    assert rc == 0
    assert "no status.json yet" in out
    data = status_data(capsys, logs, "1005")
    assert data["state"] == "unknown" and data["slurm"] is None and data["executor"] == "slurm"


def test_half_written_or_garbage_files_do_not_crash(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "succeeded")
    (run / "status.json").write_text('{"state": "runn')
    (run / "metadata.json").write_text("")
    data = status_data(capsys, logs, run.name)
    assert data["state"] == "unknown" and data["job_id"] == "1001"


def test_no_squeue_on_path_is_tolerated(capsys, logs, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SLURM_CONF")
    view = run_lookup.load_view(rf.run_dir(logs, "pending"))
    assert view.slurm is None
    assert status_json(view)["state"] == "unknown"


# ---------------------------------------------------------------------------- no argument


def test_no_argument_lists_recent_runs(capsys, logs):
    rc, out, _ = status(capsys, logs)
    assert rc == 0
    for job in ("1001", "1002", "1003", "1004", "1005", "1006", "1007"):
        assert f" {job} " in out
    _, out, _ = status(capsys, logs, "-n", "2", "--json")
    assert [r["job_id"] for r in json.loads(out)] == ["1007", "1006"]


def test_empty_logs_dir(capsys, tmp_path):
    rc, out, _ = status(capsys, tmp_path / "none")
    assert rc == 0 and "no runs in" in out


# ---------------------------------------------------------------------------- real SLURM


@pytest.mark.cluster
def test_squeue_state_of_a_held_job_then_gone(local_cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(local_cluster.slurm_conf))
    res = subprocess.run(["sbatch", "--parsable", "--hold", "-J", "srt-monitor-test", "-N", "1",
                          "-o", "/dev/null", "--wrap", "sleep 60"], capture_output=True, text=True, check=True)
    job_id = res.stdout.strip().split(";")[0]
    try:
        st = run_lookup.squeue_state(job_id)
        assert st is not None and st["state"] == "PENDING"
        assert "held" in st["reason"].lower()
        logs = tmp_path / "logs"
        fx = rf.pending_slurm_run(logs, job_id=job_id)
        view = run_lookup.load_view(fx.run_dir)
        assert view.state == "queued" and view.liveness is None
    finally:
        subprocess.run(["scancel", job_id], check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = run_lookup.squeue_state(job_id)
        if st and st["state"] == "GONE":
            break
        time.sleep(0.5)
    assert st == {"state": "GONE"}
    view = run_lookup.load_view(fx.run_dir)
    assert "no longer in the queue" in view.liveness


def test_flags_that_do_not_apply_are_errors(capsys, logs):
    rc, _, err = status(capsys, logs, "1001", "-n", "3")
    assert rc == 2 and "-n/--limit only applies when no RUN_ID" in err
    rc, _, err = status(capsys, logs, "--tail", "5")
    assert rc == 2 and "--tail needs a RUN_ID" in err
