"""benchmark.type trace-replay end to end: the real agent, local executor, simulated engine; the
result file's records follow the trace (count, lengths, send times against the timestamps)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_a_trace_replay_job_replays_the_trace(local_run):
    rows = [{"timestamp": 150 * i, "input_length": 48 + 16 * (i % 3), "output_length": 4 + i % 4,
             "hash_ids": [0, 1 + i % 2][: 1 + i % 2]} for i in range(12)]
    trace = local_run.workdir / "trace.jsonl"
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = local_run.job_file("trace-test", mode="agg", benchmark={
        "type": "trace-replay", "trace_file": str(trace), "concurrencies": [3], "ttft_threshold_ms": 60000,
        "itl_threshold_ms": 60000, "warmup_multiplier": 0})
    res = local_run.apply(job)
    assert res.returncode == 0, res.stderr[-3000:]
    run = local_run.run_dir()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded" and status["benchmark"]["points_done"] == 1
    point = json.loads((run / "results" / "result_trace_c3.json").read_text())
    assert point["valid"] is True and point["benchmark"] == "trace-replay" and point["max_concurrency"] == 3
    assert (point["completed"], point["failed"], point["trace_requests"]) == (12, 0, 12)
    recs = point["requests"]
    assert [r["index"] for r in recs] == list(range(12))
    for row, rec in zip(rows, recs):
        assert rec["timestamp_ms"] == row["timestamp"]
        assert rec["input_tokens"] == row["input_length"]  # the engine's prompt_tokens
        assert rec["output_tokens"] == row["output_length"]
        assert rec["hash_blocks"] == len(row["hash_ids"])
        assert 0 <= rec["sent_ms"] - row["timestamp"] < 100, rec  # sent at its timestamp (no cap reached)
    sends = [r["sent_ms"] for r in recs]
    assert sends == sorted(sends) and sends[-1] - sends[0] > 1500  # spread over the trace's 1.65 s
    assert point["goodput"]["fraction"] == 1.0 and point["goodput"]["requests"] == 12
    assert point["peak_in_flight"] <= 3
    assert "--trace-file" in (run / "logs" / "benchmark.log").read_text()
    rollup = json.loads((run / "results" / "rollup.json").read_text())
    assert len(rollup["points"]) == 1 and "requests" not in rollup["points"][0]
    st = local_run.srtctl("status", run.name, "--json")
    assert st.returncode == 0, st.stderr
    assert json.loads(st.stdout)["benchmark"]["points_done"] == 1
    rep = local_run.srtctl("report", run.name, "--no-plots")
    assert rep.returncode == 0, rep.stderr


def test_a_missing_trace_fails_in_the_preflight(local_run):
    job = local_run.job_file("trace-missing", mode="agg", benchmark={
        "type": "trace-replay", "trace_file": str(local_run.workdir / "nope.jsonl")})
    res = local_run.apply(job)
    assert res.returncode != 0
    status = json.loads((local_run.run_dir() / "status.json").read_text())
    assert status["state"] == "failed" and "nope.jsonl does not exist" in json.dumps(status["failure"])
    phases = [json.loads(line) for line in (local_run.run_dir() / "events.jsonl").read_text().splitlines()]
    assert not any(e.get("phase") == "workers" for e in phases)  # no worker started
