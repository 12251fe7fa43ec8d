"""`srtctl watch`: refreshes while the run moves on and exits by itself when it ends."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time

import pytest
import run_fixtures as rf
from rich.console import Console

from launcher import run_lookup, watch_cmd
from launcher.cli import main

pytestmark = pytest.mark.usefixtures("no_slurm")


def recording_console() -> Console:
    return Console(file=io.StringIO(), width=120, record=True, force_terminal=True, color_system=None)


def test_watch_follows_a_sweep_to_the_end(tmp_path, monkeypatch):
    """A run that measures its last points while being watched: watch sees every state and
    returns once the run succeeded."""
    logs = tmp_path / "logs"
    with rf.no_fsync():
        fx = rf.running_run(logs, points_done=1)
    ledger = fx.ledger
    seen: list[str] = []

    def watched() -> None:
        """Let the watcher refresh at least twice, so it sees every intermediate state."""
        n = len(seen)
        deadline = time.monotonic() + 10
        while len(seen) < n + 2 and time.monotonic() < deadline:
            time.sleep(0.01)

    def agent() -> None:
        for _ in range(3):  # one point at a time, as the agent measures them
            watched()
            rf.run_points(fx, ledger, [1, 4, 16, 64], stop_after=1)
        watched()
        rf.run_points(fx, ledger, [1, 4, 16, 64])  # writes the rollup
        fx.status.phase("benchmark", "done")
        rf.teardown(fx, "succeeded")

    con = recording_console()
    original = run_lookup.refresh

    def spy(view, *, query_slurm):
        new = original(view, query_slurm=query_slurm)
        seen.append(new.state)
        return new

    t = threading.Thread(target=agent)
    t.start()
    try:
        monkeypatch.setattr(run_lookup, "refresh", spy)  # what follow_views re-reads the run with
        view = watch_cmd.watch(fx.run_dir, interval=0.05, console=con, max_seconds=30)
    finally:
        monkeypatch.undo()
        t.join()
    assert view.state == "succeeded"
    assert seen[0] == "benchmarking" and seen[-1] == "succeeded"
    text = con.export_text()
    assert "state succeeded" in text and "4 of 4 points measured" in text
    frames = con.file.getvalue()  # every frame Live drew, with cursor movements between them
    assert "2 of 4 points measured" in frames, (seen, frames.count("points measured"))
    assert "measuring concurrency" in frames


@pytest.mark.parametrize("kind,code,word", [("succeeded", 0, "succeeded"), ("failed", 1, "failed")])
def test_watch_of_a_finished_run_returns_at_once(tmp_path_factory, capsys, kind, code, word):
    logs = rf.shared_logs(tmp_path_factory)
    start = time.monotonic()
    rc = main(["watch", "--logs-dir", str(logs), rf.SHARED_IDS[kind], "--interval", "5"])
    assert time.monotonic() - start < 4
    assert rc == code
    assert f"run {word}" in capsys.readouterr().out


def test_watch_exits_when_the_agent_is_gone(tmp_path_factory, tmp_path, capsys):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    old = time.time() - 3600
    os.utime(rf.run_dir(logs, "running") / "status.json", (old, old))
    rc = main(["watch", "--logs-dir", str(logs), "1003", "--interval", "0.05"])
    out = capsys.readouterr().out
    assert rc == 1 and "run failed: agent died: no agent process" in out


def test_watch_process_exits_by_itself_when_cancelled(tmp_path):
    """The real command in its own process; the run is cancelled while it watches."""
    logs = tmp_path / "logs"
    with rf.no_fsync():
        fx = rf.running_run(logs)
    env = {**os.environ, "SLURM_CONF": "/nonexistent/slurm.conf"}
    proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "watch", "--logs-dir", str(logs), fx.job_id,
                             "--interval", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        time.sleep(1.0)
        assert proc.poll() is None, proc.communicate()
        fx.status.event("signal", signal="SIGTERM")
        rf.teardown(fx, "cancelled")
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, err
    assert "state cancelled" in out and "run cancelled" in out
