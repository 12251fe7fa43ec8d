"""StatusWriter: status.json always whole and current, events.jsonl one line per change."""

from __future__ import annotations

import json

from srt_agent.agent.status import SCHEMA_VERSION, StatusWriter


def read(run_dir) -> tuple[dict, list[dict]]:
    status = json.loads((run_dir / "status.json").read_text())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return status, events


def test_phases_components_and_events(run_dir):
    w = StatusWriter(run_dir, job_id="42", name="job", executor="local")
    w.phase("workers")
    w.component("decode-0", kind="worker", node="n1", state="starting", pid=7)
    w.component("decode-0", state="starting", health="unknown")  # no state change: no event
    w.component("decode-0", state="ready", ready_at="2026-01-01T00:00:01+00:00",
                started_at="2026-01-01T00:00:00+00:00")
    w.phase("workers", "done")
    status, events = read(run_dir)
    assert status["schema_version"] == SCHEMA_VERSION and status["job_id"] == "42"
    assert status["phase"] == "workers" and status["phases"] == {"workers": "done"}
    [comp] = status["components"]
    assert comp["name"] == "decode-0" and comp["state"] == "ready" and comp["health"] == "unknown"
    assert "time_to_ready" in comp
    assert [(e["event"], e.get("state")) for e in events] == [
        ("phase", "running"), ("component", "starting"), ("component", "ready"), ("phase", "done")]
    assert events[1]["pid"] == 7 and events[1]["node"] == "n1"


def test_the_first_failure_is_kept(run_dir):
    w = StatusWriter(run_dir, job_id="42", name="job", executor="local")
    w.fail("decode-0 on n1 exited with code 3", component="decode-0", node="n1", exit_code=3, log_tail=["boom"])
    w.fail("router on n0 exited with code 1", component="router", node="n0", exit_code=1)
    status, events = read(run_dir)
    assert status["state"] == "failed"
    assert status["failure"] == {"component": "decode-0", "node": "n1", "exit_code": 3,
                                 "message": "decode-0 on n1 exited with code 3", "log_tail": ["boom"]}
    assert [e["component"] for e in events if e["event"] == "failure"] == ["decode-0", "router"]


def test_benchmark_progress_merges(run_dir):
    w = StatusWriter(run_dir, job_id="42", name="job", executor="local")
    w.benchmark(points_total=4)
    w.benchmark(points_done=1, current="c16")
    status = json.loads((run_dir / "status.json").read_text())  # no event for progress
    assert not (run_dir / "events.jsonl").exists()
    assert status["benchmark"] == {"points_total": 4, "points_done": 1, "current": "c16", "results": []}
