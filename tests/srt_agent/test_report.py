"""srt_agent.report: data loading, Pareto frontier, the figures' series, the files written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from srt_agent import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "launcher"))
import run_fixtures as rf  # tests/launcher/run_fixtures.py: run dirs from the agent's writers

pytest.importorskip("matplotlib")


@pytest.fixture
def logs(tmp_path_factory) -> Path:
    return rf.shared_logs(tmp_path_factory)


def results_of(run: Path) -> dict[int, dict]:
    out = {}
    for p in (run / "results").glob("result_*.json"):
        r = json.loads(p.read_text())
        out[r["max_concurrency"]] = r
    return out


# ---------------------------------------------------------------------------- data


@pytest.mark.parametrize("xy,front", [
    ([], []),
    ([(1.0, 1.0)], [0]),
    ([(3.0, 1.0), (2.0, 2.0), (1.0, 3.0)], [2, 1, 0]),             # all on the frontier, by x
    ([(3.0, 1.0), (2.0, 0.5), (1.0, 3.0), (1.0, 2.0)], [2, 0]),   # (2, .5) and (1, 2) dominated
    ([(2.0, 2.0), (2.0, 2.0)], [0]),                              # duplicates count once
])
def test_pareto_frontier(xy, front):
    assert report.pareto_frontier(xy) == front


def test_load_points_prefers_rollup_then_ledger_then_files(tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    done = rf.run_dir(logs, "succeeded")
    assert [p["max_concurrency"] for p in report.load_points(done)] == [1, 4, 16, 64]
    running = rf.run_dir(logs, "running")  # no rollup yet: the ledger's points only
    bad = dict(results_of(running)[4], max_concurrency=16, failed=99)  # an invalid point's leftover file
    (running / "results" / "result_isl512_osl32_c16.json").write_text(json.dumps(bad))
    assert [p["max_concurrency"] for p in report.load_points(running)] == [1, 4]
    (running / "ledger.json").unlink()
    assert [p["max_concurrency"] for p in report.load_points(running)] == [1, 4, 16]


def test_per_gpu_and_per_user_values(logs):
    run = report.load_run(rf.run_dir(logs, "running"))  # 1P_2D: 12 GPUs, 8 of them decode
    p = run.points[0]
    assert run.gpus == 12 and run.decode_gpus == 8
    assert report.per_gpu_value(p, "total") == pytest.approx(p["output_throughput"] / 12)
    assert report.per_gpu_value(p, "decode") == pytest.approx(p["output_throughput"] / 8)
    assert report.per_user_value(p) == pytest.approx(1000 / p["mean_tpot_ms"])
    agg = report.load_run(rf.run_dir(logs, "agg")).points[0]
    assert agg["decode_gpus"] is None
    assert report.per_gpu_value(agg, "decode") == report.per_gpu_value(agg, "total")
    legacy = {"output_throughput": 100.0, "mean_tpot_ms": 20.0}  # a result without the per-GPU keys
    assert report.per_gpu_value(legacy, "total", gpus=4) == 25.0
    assert report.per_user_value(legacy) == 50.0


# ---------------------------------------------------------------------------- figures


def test_pareto_figure_series(logs):
    runs = [report.load_run(rf.run_dir(logs, k)) for k in ("succeeded", "running", "fast")]
    fig = report.pareto_figure(runs)
    ax = fig.axes[0]
    lines = {line.get_gid(): line for line in ax.get_lines()}
    for run in runs:
        pts, front = report.pareto_points(run)
        points, frontier = lines[f"points:{run.label}"], lines[f"frontier:{run.label}"]
        assert frontier.get_label() == run.label
        assert list(points.get_xdata()) == [x for x, _, _ in pts]
        assert list(points.get_ydata()) == [y for _, y, _ in pts]
        assert len(frontier.get_xdata()) == len(front)
        assert points.get_color() == frontier.get_color()
    assert len(lines[f"points:{runs[0].label}"].get_xdata()) == 4
    assert len(lines[f"points:{runs[1].label}"].get_xdata()) == 2
    colours = {lines[f"frontier:{r.label}"].get_color() for r in runs}
    assert len(colours) == 3  # one colour per run
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [r.label for r in runs]
    assert "per GPU" in ax.get_ylabel() and "1000 / mean TPOT" in ax.get_xlabel()
    notes = " ".join(t.get_text() for t in ax.texts)
    assert "denominator: all GPUs of the job" in notes
    assert {t.get_text() for t in ax.texts if t.get_text().startswith("c=")} == {"c=1", "c=4", "c=16", "c=64"}
    # the faster run's points lie above and right of the slower one's
    slow, fast = runs[0], runs[2]
    for (x1, y1, _), (x2, y2, _) in zip(report.pareto_points(slow)[0], report.pareto_points(fast)[0]):
        assert x2 == pytest.approx(2 * x1, rel=0.01) and y2 == pytest.approx(2 * y1, rel=0.01)


def test_pareto_figure_per_decode_gpu_says_so(logs):
    fig = report.pareto_figure([report.load_run(rf.run_dir(logs, "running"))], per_gpu="decode")
    ax = fig.axes[0]
    assert "per decode GPU" in ax.get_ylabel()
    assert "denominator: decode GPUs" in " ".join(t.get_text() for t in ax.texts)


def test_latency_figure_series(logs):
    runs = [report.load_run(rf.run_dir(logs, k)) for k in ("succeeded", "running")]
    fig = report.latency_figure(runs)
    assert len(fig.axes) == 4
    res = results_of(rf.run_dir(logs, "succeeded"))
    for ax, (key, title) in zip(fig.axes, report.LATENCY_METRICS):
        assert ax.get_ylabel() == f"{title} (ms)" and "concurrency" in ax.get_xlabel()
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {f"{r.label} {s}" for r in runs for s in ("p50", "p99")}
        p50, p99 = lines[f"{runs[0].label} p50"], lines[f"{runs[0].label} p99"]
        assert list(p50.get_xdata()) == [1, 4, 16, 64]
        assert list(p50.get_ydata()) == [res[c][f"median_{key}_ms"] for c in (1, 4, 16, 64)]
        assert list(p99.get_ydata()) == [res[c][f"p99_{key}_ms"] for c in (1, 4, 16, 64)]
        assert p50.get_linestyle() == "-" and p99.get_linestyle() == "--"
        assert len(lines[f"{runs[1].label} p50"].get_xdata()) == 2
        assert p50.get_color() != lines[f"{runs[1].label} p50"].get_color()


# ---------------------------------------------------------------------------- files


def test_write_run_report_headless(tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "succeeded")
    pyplot_before = "matplotlib.pyplot" in sys.modules
    out = report.write_run_report(run)
    assert out == run / "report"
    for name in ("pareto.png", "latency.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    md = (out / "report.md").read_text()
    assert md.count("| yes |") == 4 and "ISL/OSL 512/32" in md
    assert pyplot_before or "matplotlib.pyplot" not in sys.modules  # no GUI backend, no pyplot state
    assert not list(out.glob(".*.tmp"))


def test_without_matplotlib_writes_markdown_and_says_so(tmp_path_factory, tmp_path, monkeypatch):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "succeeded")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "plotly", None)  # the whole `report` extra is missing
    written = report.write_report([run], tmp_path / "out")
    assert set(written) == {"markdown"}
    md = (tmp_path / "out" / "report.md").read_text()
    assert report.NO_MATPLOTLIB in md and "| 64 |" in md
    assert not (tmp_path / "out" / "pareto.png").exists()


def test_client_warnings_reach_the_summary(tmp_path_factory, tmp_path):
    logs = rf.copy_logs(tmp_path_factory, tmp_path / "logs")
    run = rf.run_dir(logs, "succeeded")
    rollup = json.loads((run / "results" / "rollup.json").read_text())
    rollup["points"][-1]["client_warnings"] = ["client lag p99 12.0 ms > 10 ms: the client sent requests late"]
    (run / "results" / "rollup.json").write_text(json.dumps(rollup))
    md = report.summary_markdown([report.load_run(run)])
    assert "- c=64: client lag p99 12.0 ms" in md
