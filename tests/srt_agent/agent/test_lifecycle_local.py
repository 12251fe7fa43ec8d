"""Process lifecycle under the local executor: SIGKILL of the agent mid-sweep leaves nothing
running (parent-death signal, pids.json), `srtctl status` notices within 5 s and records the run
failed ("agent died"), and `srtctl apply --resume` then resumes on the same ports."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from agent_local_support import pid_alive, stop_agent

pytestmark = pytest.mark.slow


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            out.setdefault(ppid, []).append(int(entry.name))
    return out


def _descendants(pid: int) -> dict[int, str]:
    tree, todo, out = _children_map(), [pid], {}
    while todo:
        for child in tree.get(todo.pop(), []):
            try:
                out[child] = (Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
            todo.append(child)
    return out


def test_sigkill_of_the_agent_mid_sweep_leaves_no_orphan_and_resume_works(local_run):
    job = local_run.job_file(benchmark={"type": "sa-bench", "isl": 16, "osl": 300, "concurrencies": [1, 2],
                                        "prompt_multiplier": 1, "warmup_multiplier": 0, "processes": 2})
    proc = local_run.start(job)
    try:
        status = local_run.wait_status(lambda s: s["benchmark"]["current"] == 2 or s["state"] == "failed", timeout=90)
        assert status["state"] == "benchmarking", status["failure"]
        run = local_run.run_dir()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # both load-generator worker processes are up
            procs = _descendants(status["agent_pid"])
            if len([c for c in procs.values() if "srt_agent.loadgen.worker_entry" in c]) == 2:
                break
            time.sleep(0.05)
        assert len([c for c in procs.values() if "srt_agent.loadgen.worker_entry" in c]) == 2, procs
        assert {"prefill-0", "decode-0", "router"} <= set(json.loads((run / "pids.json").read_text())["processes"])
        killed = time.monotonic()
        os.kill(status["agent_pid"], signal.SIGKILL)
        # the kernel's parent-death signal alone stops them (no srtctl command has looked yet)
        while time.monotonic() - killed < 3 and any(pid_alive(p) for p in procs):
            time.sleep(0.05)
        assert not {p: c for p, c in procs.items() if pid_alive(p)}, "processes outlived the agent"
        while True:
            st = local_run.srtctl("status", run.name, "--json")
            data = json.loads(st.stdout)
            if data["agent_gone"] or time.monotonic() - killed > 10:
                break
            time.sleep(0.2)
        assert time.monotonic() - killed < 5, "srtctl status took more than 5 s to notice the dead agent"
        assert data["state"] == "failed" and data["failure"]["message"].startswith("agent died")
        assert st.returncode == 1
        proc.wait(timeout=30)
    finally:
        stop_agent(proc)
    done = set(json.loads((run / "ledger.json").read_text())["points"])
    assert "isl16_osl300_c1" in done and len(done) < 2
    # resume with a job file that adds a point: taken, the finished point kept
    more = local_run.job_file(benchmark={"type": "sa-bench", "isl": 16, "osl": 300, "concurrencies": [1, 2, 3],
                                         "prompt_multiplier": 1, "warmup_multiplier": 0, "processes": 2})
    res = local_run.srtctl("apply", "--resume", str(run), "-f", str(more), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "benchmark.concurrencies changed" in res.stderr
    final = json.loads((run / "status.json").read_text())
    assert final["state"] == "succeeded" and final["benchmark"]["points_done"] == 3
    events = [json.loads(x) for x in (run / "events.jsonl").read_text().splitlines()]
    assert 1 in {e["concurrency"] for e in events if e["event"] == "point_skipped"}
