"""procguard with real processes: the parent-death signal, pids.json and stopping leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from srt_agent.agent import procguard

IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


def _alive(pid: int) -> bool:
    return procguard.start_time(pid) is not None


def test_a_leftover_that_ignores_sigterm_is_killed_from_the_record(tmp_path):
    leftover = subprocess.Popen([sys.executable, "-c", IGNORE_TERM], start_new_session=True, stdout=subprocess.PIPE)
    try:
        assert leftover.stdout.readline() == b"up\n"
        rec = procguard.PidRecord(tmp_path, "local", "1")
        rec.add("decode-0", leftover.pid)
        data = json.loads((tmp_path / "pids.json").read_text())
        assert data["processes"]["decode-0"]["pgid"] == leftover.pid and data["agent"]["pid"] == os.getpid()
        assert set(procguard.leftovers(tmp_path)) == {"decode-0"}
        t0 = time.monotonic()
        assert procguard.stop_leftovers(tmp_path, grace=0.5) == ["decode-0"]
        assert time.monotonic() - t0 < 3
        assert leftover.wait(timeout=5) == -9
        assert procguard.leftovers(tmp_path) == {}
    finally:
        leftover.kill()


def test_a_reused_pid_is_not_mistaken_for_a_leftover(tmp_path):
    rec = procguard.PidRecord(tmp_path, "local", "1")
    rec.add("router", os.getpid())
    rec.data["processes"]["router"]["start"] -= 1  # same pid, another process's start time
    (tmp_path / "pids.json").write_text(json.dumps(rec.data))
    assert procguard.leftovers(tmp_path) == {}


def test_guarded_child_gets_sigterm_when_its_parent_is_killed(tmp_path):
    out = tmp_path / "child.pid"
    parent_code = ("import subprocess, sys, time; from srt_agent.agent.procguard import guarded; "
                   f"p = subprocess.Popen(guarded([sys.executable, '-c', 'import time; time.sleep(60)'])); "
                   f"open({str(out)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    deadline = time.monotonic() + 10
    while not (out.is_file() and out.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(out.read_text())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 3
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the child outlived its SIGKILLed parent"
