"""`srtctl runs`: listing, filters, headline results."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import run_fixtures as rf

from launcher.cli import main
from launcher.runs_cmd import parse_since
from srt_agent.atomic import write_json_atomic

pytestmark = pytest.mark.usefixtures("no_slurm")


def runs_json(capsys, logs: Path, *args: str) -> list[dict]:
    assert main(["runs", "--logs-dir", str(logs), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_lists_every_run_newest_first_with_headline_results(capsys, logs):
    rows = runs_json(capsys, logs)
    assert [r["job_id"] for r in rows] == ["1007", "1006", "1005", "1004", "1003", "1002", "1001"]
    by_id = {r["job_id"]: r for r in rows}
    ok = by_id["1001"]
    assert ok["name"] == "fixture-disagg" and ok["topology"] == "1P_1D" and ok["tags"] == ["baseline", "sim"]
    assert ok["state"] == "succeeded" and ok["points"] == 4 and ok["gpus"] == 8
    results = [json.loads(p.read_text()) for p in (rf.run_dir(logs, "succeeded") / "results").glob("result_*")]
    best = max(r["output_throughput"] for r in results)
    assert ok["best_output_tok_s"] == best
    assert ok["best_output_tok_s_per_gpu"] == pytest.approx(best / 8)
    assert by_id["1006"]["topology"] == "2A" and by_id["1006"]["mode"] == "aggregated"
    assert by_id["1007"]["best_output_tok_s"] == pytest.approx(2 * best, rel=0.01)
    assert by_id["1002"]["state"] == "failed" and by_id["1002"]["best_output_tok_s"] is None
    assert by_id["1003"]["points_done"] == 2 and by_id["1003"]["points_total"] == 4
    assert by_id["1005"]["state"] == "unknown"
    assert ok["ready_s"] is not None and ok["ready_s"] >= 0
    assert by_id["1005"]["ready_s"] is None


def test_table(capsys, logs):
    assert main(["runs", "--logs-dir", str(logs)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("1001 "))
    cells = line.split()
    assert cells[:5] == ["1001", "fixture-disagg", "1P_1D", "baseline,sim", "succeeded"]
    assert cells[5] == "4/4"
    assert "best point of the sweep" in out and "ready: seconds from submit to ready" in out


def test_tag_filters_need_every_tag(capsys, logs):
    assert [r["job_id"] for r in runs_json(capsys, logs, "--tag", "baseline")] == ["1001"]
    assert {r["job_id"] for r in runs_json(capsys, logs, "--tag", "sim")} == {"1001", "1002", "1003", "1004",
                                                                             "1006", "1007"}
    assert runs_json(capsys, logs, "--tag", "sim", "--tag", "resume")[0]["job_id"] == "1004"
    assert runs_json(capsys, logs, "--tag", "nope") == []


def test_state_filter_and_limit(capsys, logs):
    assert [r["job_id"] for r in runs_json(capsys, logs, "--state", "failed")] == ["1002"]
    assert [r["job_id"] for r in runs_json(capsys, logs, "-n", "2")] == ["1007", "1006"]


def test_since(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    now = datetime.now(timezone.utc)
    ages = {"1001": timedelta(days=10), "1002": timedelta(days=3), "1003": timedelta(hours=5)}
    for kind, job in rf.SHARED_IDS.items():
        meta_path = rf.run_dir(logs, kind) / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["submitted_at"] = (now - ages.get(job, timedelta(minutes=1))).isoformat(timespec="seconds")
        write_json_atomic(meta_path, meta)
    assert {r["job_id"] for r in runs_json(capsys, logs, "--since", "2d")} == {"1003", "1004", "1005", "1006", "1007"}
    assert {r["job_id"] for r in runs_json(capsys, logs, "--since", "4d")} >= {"1002", "1003"}
    assert "1001" not in {r["job_id"] for r in runs_json(capsys, logs, "--since", "4d")}
    day = (now - timedelta(days=5)).astimezone().strftime("%Y-%m-%d")
    got = {r["job_id"] for r in runs_json(capsys, logs, "--since", day)}
    assert "1002" in got and "1001" not in got
    assert {r["job_id"] for r in runs_json(capsys, logs, "--since", "30m")} == {"1004", "1005", "1006", "1007"}


def test_parse_since():
    now = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("12h", now) == now - timedelta(hours=12)
    assert parse_since("1w", now) == now - timedelta(days=7)
    d = parse_since("2026-01-08")
    assert (d.year, d.month, d.day, d.hour) == (2026, 1, 8, 0) and d.tzinfo is not None
    with pytest.raises(argparse.ArgumentTypeError, match="neither an age"):
        parse_since("yesterday")


def test_bad_since_is_a_usage_error(capsys, logs):
    with pytest.raises(SystemExit) as exc:
        main(["runs", "--logs-dir", str(logs), "--since", "soon"])
    assert exc.value.code == 2
    assert "neither an age" in capsys.readouterr().err


def test_staging_dirs_and_strays_are_skipped(capsys, tmp_path):
    logs = tmp_path / "logs"
    (logs / ".pending-20260101_000000-abc123").mkdir(parents=True)
    (logs / ".pending-20260101_000000-abc123" / "job.sbatch").write_text("#!/bin/bash\n")
    (logs / "notes").mkdir()
    (logs / "README").write_text("x")
    assert runs_json(capsys, logs) == []
