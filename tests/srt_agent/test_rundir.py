"""The run directory core both halves use: paths, log tails, the time-to-ready line, and the one
status.json write from outside the agent."""

from __future__ import annotations

import json
from pathlib import Path

from srt_agent.agent.status import StatusWriter
from srt_agent.cluster_config import ClusterConfig
from srt_agent.rundir import configs_dir, log_tail, logs_dir, read_json, ready_summary, record_agent_died, srtctl_root


def test_paths_follow_the_cluster_file_then_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SRTCTL_ROOT", str(tmp_path / "env-root"))
    monkeypatch.chdir(tmp_path)
    plain = ClusterConfig()
    assert srtctl_root(plain) == tmp_path / "env-root" and configs_dir(plain) == tmp_path / "env-root" / "configs"
    assert logs_dir(plain) == tmp_path / "logs"
    set_ = ClusterConfig(srtctl_root=str(tmp_path / "site"), logs_dir=str(tmp_path / "runs"))
    assert srtctl_root(set_) == tmp_path / "site" and logs_dir(set_) == tmp_path / "runs"


def test_log_tail_keeps_the_last_lines_and_tolerates_a_missing_log(tmp_path):
    log = tmp_path / "w.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(200)) + b"bad \xff byte")
    tail = log_tail(log, lines=3)
    assert tail == ["line 198", "line 199", "bad \ufffd byte"]
    assert len(log_tail(log)) == 50
    assert log_tail(tmp_path / "nope.log") == []


def test_ready_summary_names_queue_and_steps_in_order():
    ttr = {"submit_to_ready_s": 42.14, "queue_wait_s": 3.0,
           "steps_s": {"workers": 30.0, "node_probe": 0.42, "smoke_request": 0.2}}
    assert ready_summary(ttr) == "42.1 s to ready (queue 3.0, node probe 0.4, workers 30.0, smoke request 0.2)"
    assert ready_summary({"steps_s": {}}) == "not ready"
    assert ready_summary(None) is None


def test_record_agent_died_fails_a_live_run_once_and_leaves_a_final_one(tmp_path):
    assert record_agent_died(tmp_path, "gone") is None  # no status.json: nothing to record
    s = StatusWriter(tmp_path, job_id="7", name="j", executor="local")
    s.update(state="benchmarking")
    out = record_agent_died(tmp_path, "agent process 1 is gone")
    assert out["state"] == "failed" and out["message"] == "agent died: agent process 1 is gone"
    assert out["failure"]["component"] == "agent"
    assert read_json(tmp_path / "status.json") == out
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "failure" and events[-1]["recorded_by"] == "srtctl"
    again = record_agent_died(tmp_path, "later")
    assert again == out  # final: left alone
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == len(events)


def test_read_json_is_none_for_missing_or_half_written_files(tmp_path: Path):
    (tmp_path / "half.json").write_text('{"state": ')
    assert read_json(tmp_path / "half.json") is None and read_json(tmp_path / "none.json") is None
