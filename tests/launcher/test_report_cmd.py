"""`srtctl report`: plots and a summary for one run or several overlaid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import run_fixtures as rf

from launcher.cli import main

pytestmark = pytest.mark.usefixtures("no_slurm")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def md_rows(md: str, heading: str) -> list[list[str]]:
    part = md[md.index(heading):]
    part = part[: part.index("\n## ", 3)] if "\n## " in part[3:] else part
    return [[c.strip() for c in line.strip("|").split("|")] for line in part.splitlines()
            if line.startswith("| ") and not line.startswith("| conc")]


def test_two_runs_overlay(capsys, logs, tmp_path):
    out = tmp_path / "cmp"
    rc = main(["report", "--logs-dir", str(logs), "1001", "1007", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "pareto:" in printed and "latency:" in printed and "markdown:" in printed
    w, h = png_size(out / "pareto.png")
    assert w > 600 and h > 400
    png_size(out / "latency.png")
    md = (out / "report.md").read_text()
    assert "![pareto](pareto.png)" in md and "![latency](latency.png)" in md
    assert "fixture-disagg (job 1001, 1P_1D, 8 GPUs)" in md and "fixture-disagg (job 1007, 1P_1D, 8 GPUs)" in md
    slow, fast = md_rows(md, "## fixture-disagg (job 1001"), md_rows(md, "## fixture-disagg (job 1007")
    assert [r[0] for r in slow] == ["1", "4", "16", "64"] == [r[0] for r in fast]
    # the faster run (speed=2) has twice the output throughput at every concurrency
    for a, b in zip(slow, fast):
        assert float(b[4].replace(",", "")) == pytest.approx(2 * float(a[4].replace(",", "")), rel=0.01)
    assert "denominator: all GPUs of the job" in md


def test_one_run_defaults_to_its_report_dir(capsys, tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    assert main(["report", "--logs-dir", str(logs), "1006", "--no-plots"]) == 0
    run = rf.run_dir(logs, "agg")
    md = (run / "report" / "report.md").read_text()
    assert "fixture-agg (job 1006, 2A, 4 GPUs)" in md
    results = json.loads((run / "results" / "rollup.json").read_text())["points"]
    rows = md_rows(md, "## fixture-agg")
    assert [int(r[0]) for r in rows] == [p["max_concurrency"] for p in results]
    for row, p in zip(rows, results):
        assert float(row[5].replace(",", "")) == pytest.approx(p["output_throughput"] / 4, abs=0.06)
    out = capsys.readouterr().out
    assert "tok/s/GPU" in out and "frontier" in out


def test_several_runs_default_to_reports_dir_in_cwd(capsys, logs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--logs-dir", str(logs), "1001", "1004", "1003", "--no-plots"]) == 0
    out = tmp_path / "reports" / "1001_vs_1004_vs_1003"
    assert not (out / "pareto.png").exists()
    md = (out / "report.md").read_text()
    assert "plots not requested" in md
    assert len(md_rows(md, "## fixture-nginx (job 1003")) == 2  # the two points measured so far


def test_per_decode_gpu(capsys, logs, tmp_path):
    assert main(["report", "--logs-dir", str(logs), "1003", "--per-gpu", "decode", "--no-plots",
                 "-o", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "denominator: decode GPUs" in md
    run = rf.run_dir(logs, "running")
    first = json.loads(next((run / "results").glob("result_*_c1.json")).read_text())
    row = md_rows(md, "## fixture-nginx")[0]
    assert first["decode_gpus"] == 8
    assert float(row[5]) == pytest.approx(first["output_throughput"] / 8, abs=0.06)


def test_run_without_points_gets_markdown_only(capsys, logs, tmp_path):
    assert main(["report", "--logs-dir", str(logs), "1002", "-o", str(tmp_path)]) == 0
    assert not (tmp_path / "pareto.png").exists()
    md = (tmp_path / "report.md").read_text()
    assert "no benchmark points to plot" in md and "No valid benchmark points" in md
    assert "no valid benchmark points" in capsys.readouterr().out


def test_unknown_run(capsys, logs, tmp_path):
    assert main(["report", "--logs-dir", str(logs), "1001", "31337", "-o", str(tmp_path)]) == 1
    assert "no run '31337'" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()
