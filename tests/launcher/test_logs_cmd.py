"""`srtctl logs` against run directories written by the agent's own writers (run_fixtures)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import run_fixtures as rf

from launcher import logs_cmd
from launcher.cli import main
from launcher.run_lookup import load_view
from srt_agent.agent.status import StatusWriter

pytestmark = pytest.mark.usefixtures("no_slurm")


def logs_out(capsys, logs: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["logs", "--logs-dir", str(logs), *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_without_component_lists_the_logs(capsys, logs):
    rc, out, _ = logs_out(capsys, logs, "1001")
    assert rc == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.strip()}
    assert {"prefill-0", "decode-0", "router", "benchmark"} <= set(rows)
    assert "logs/local1_decode-0.log" in rows["decode-0"]
    assert "decode-0.launcher" in rows["decode-0"]
    assert "load generator output" in rows["benchmark"]


def test_component_by_exact_name_prints_its_whole_log(capsys, logs):
    rc, out, _ = logs_out(capsys, logs, "1002", "decode-0")
    assert rc == 0
    text = (rf.run_dir(logs, "failed") / "logs" / "local1_decode-0.log").read_text()
    assert out == text
    assert "==>" not in out


def test_prefix_and_last_lines(capsys, logs):
    _, out, _ = logs_out(capsys, logs, "1002", "dec", "-n", "2")
    assert out.splitlines() == ["Traceback (most recent call last):", "RuntimeError: CUDA out of memory (simulated)"]
    _, out, _ = logs_out(capsys, logs, "1001", "bench")
    assert "concurrency 64 completed 128" in out


def test_prefix_matching_several_components_prints_each_under_a_header(capsys, logs):
    _, out, _ = logs_out(capsys, logs, "1003", "frontend")
    headers = [line for line in out.splitlines() if line.startswith("==> ")]
    assert len(headers) == 10
    assert headers[0] == "==> frontend-0 (local1_frontend-0.log) <=="
    assert "frontend-9 ready" in out
    assert "launcher" not in out  # NAME.launcher only when asked for


def test_launcher_output_by_suffix(capsys, logs):
    _, out, _ = logs_out(capsys, logs, "1002", "decode-0.launcher")
    assert out == "[launcher] decode-0 on local1\n"


def test_missing_component_log_falls_back_to_launcher_output(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    (rf.run_dir(logs, "succeeded") / "logs" / "local0_router.log").unlink()
    _, out, _ = logs_out(capsys, logs, "1001", "router")
    assert out == "[launcher] router on local0\n"


def test_unknown_component_lists_what_exists(capsys, logs):
    rc, _, err = logs_out(capsys, logs, "1002", "zzz")
    assert rc == 1
    assert "no log matching 'zzz'" in err and "decode-0, prefill-0" in err


def test_agent_output_of_a_batch_job(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "pending")
    (run / "slurm-1005.out").write_text("[srt-agent] starting\n")
    (run / "logs" / "profiling.log").write_text("round 1\n")
    (run / "nginx" / "error.log").write_text("[warn] upstream\n")
    _, out, _ = logs_out(capsys, logs, "1005")
    assert "agent" in out and "slurm-1005.out" in out
    assert "logs/profiling.log" in out and "nginx/error.log" in out
    _, out, _ = logs_out(capsys, logs, "1005", "nginx-error")
    assert out == "[warn] upstream\n"
    _, out, _ = logs_out(capsys, logs, "1005", "agent")
    assert out == "[srt-agent] starting\n"
    rc, _, err = logs_out(capsys, logs, "1005", "prefill-0")
    assert rc == 1 and "no log written yet" in err


def test_follow_on_a_finished_run_prints_and_returns(capsys, logs):
    start = time.monotonic()
    rc, out, err = logs_out(capsys, logs, "1001", "decode-0", "-f")
    assert rc == 0 and time.monotonic() - start < 5
    assert "decode-0 ready" in out and "run succeeded" in err


def test_follow_stops_when_the_agent_is_gone(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    old = time.time() - 3600
    os.utime(rf.run_dir(logs, "running") / "status.json", (old, old))
    rc, out, err = logs_out(capsys, logs, "1003", "nginx", "-f", "--interval", "0.05")
    assert rc == 0 and "nginx starting" in out and "run failed: agent died: no agent process" in err


def test_follow_several_logs_prefixes_lines(tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "running")
    rf.touch(run)
    view = load_view(run)
    entries = logs_cmd.match(logs_cmd.available_logs(view), "decode")
    assert [e.key for e in entries] == ["decode-0", "decode-1"]
    out = io.StringIO()

    def finish() -> None:
        time.sleep(0.3)
        with open(entries[1].path, "a") as f:
            f.write("late line without newline")
        with open(entries[0].path, "a") as f:
            f.write("decode-0 step 1\n")
        time.sleep(0.2)
        StatusWriter(run, job_id="1003", name="fixture-nginx", executor="local").update(state="succeeded")

    t = threading.Thread(target=finish)
    t.start()
    final = logs_cmd.follow(view, entries, None, interval=0.05, out=out, max_seconds=20)
    t.join()
    lines = out.getvalue().splitlines()
    assert final.state == "succeeded"
    assert "[decode-0] decode-0 starting on local1 port" in lines[0]
    assert "[decode-0] decode-0 step 1" in lines
    assert lines[-1] == "[decode-1] late line without newline"


def test_follow_cli_exits_by_itself_when_the_run_ends(tmp_path_factory, tmp_path):
    """A real `srtctl logs -f` process: new lines appear while it runs; it exits on its own once
    status.json turns terminal."""
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "running")
    rf.touch(run)
    env = {**os.environ, "SLURM_CONF": "/nonexistent/slurm.conf"}
    proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "logs", "--logs-dir", str(logs), "1003",
                             "benchmark", "-f", "--interval", "0.05"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        with open(run / "logs" / "benchmark.log", "a") as f:
            f.write("concurrency 16 completed 32\n")
        time.sleep(0.3)
        StatusWriter(run, job_id="1003", name="fixture-nginx", executor="local").update(state="cancelled")
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "concurrency 4 completed 8" in out and out.rstrip().endswith("concurrency 16 completed 32")
    assert "run cancelled" in err
