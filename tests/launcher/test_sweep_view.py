"""`srtctl status SWEEP`, `srtctl runs --sweep SWEEP`, `srtctl report --sweep SWEEP` on run
directories written by the project's own writers (run_fixtures), listed by a sweep.json."""

import json
import sys

import pytest

from launcher.cli import main

try:
    from run_fixtures import DISAGG_ROUTER, running_run, succeeded_run
except ImportError:  # pragma: no cover
    from tests.launcher.run_fixtures import DISAGG_ROUTER, running_run, succeeded_run

SWEEP_ID = "fixture-disagg_20260110_120000"
KEY = "backend.sim.decode_step_ms"


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    root = tmp_path / "logs"
    a = succeeded_run(root, job_id="2001", speed=1.0)
    b = succeeded_run(root, job_id="2002", timestamp="20260110_130000", speed=2.0)
    c = running_run(root, job_id="2003")
    members = [{"name": f"fixture-disagg_dsm{v}", "values": {KEY: v}, "run_dir": str(fx.run_dir),
                "job_id": fx.job_id} for v, fx in ((2, a), (4, b), (8, c))]
    members.append({"name": "fixture-disagg_dsm16", "values": {KEY: 16}, "run_dir": None})
    (root / "sweeps" / SWEEP_ID).mkdir(parents=True)
    (root / "sweeps" / SWEEP_ID / "sweep.json").write_text(json.dumps(
        {"schema": 1, "sweep_id": SWEEP_ID, "mode": "jobs", "keys": [KEY], "labels": {KEY: "dsm"},
         "members": members}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(tmp_path / "srtslurm.yaml"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    return tmp_path


def test_status_sweep_shows_every_member_state_and_progress(sweep, capsys):
    assert main(["status", SWEEP_ID[:12], "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["members"]
    assert [r["state"] for r in rows] == ["succeeded", "succeeded", "benchmarking", "not started"]
    assert rows[2]["points_done"] == 2 and rows[2]["points_total"] == 4
    assert main(["status", SWEEP_ID]) == 0
    out = capsys.readouterr().out
    assert "2/4 members succeeded" in out and "dsm=8" in out and "not started" in out
    # the sweep's directory works too; a plain run id still shows that run
    assert main(["status", str(sweep / "logs" / "sweeps" / SWEEP_ID), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["members"]) == 4
    assert main(["status", "2001", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == "2001"


def test_runs_sweep_lists_values_and_headline_results(sweep, capsys):
    assert main(["runs", "--sweep", SWEEP_ID, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["members"]
    assert rows[0]["values"] == {KEY: 2} and rows[0]["label"] == "dsm=2"
    assert rows[1]["best_output_tok_s"] > rows[0]["best_output_tok_s"] > 0  # the faster fixture run


def test_report_sweep_one_pareto_with_every_member_labelled(sweep, capsys):
    pytest.importorskip("matplotlib")
    assert main(["report", "--sweep", SWEEP_ID]) == 0
    out = sweep / "reports" / SWEEP_ID
    assert (out / "pareto.png").is_file() and (out / "latency.png").is_file()
    md = (out / "report.md").read_text()
    for label in ("dsm=2", "dsm=4", "dsm=8"):
        assert label in md
    from srt_agent.report import load_run, pareto_figure

    runs = [load_run(json.loads((sweep / "logs" / "sweeps" / SWEEP_ID / "sweep.json").read_text())
                     ["members"][i]["run_dir"]) for i in range(3)]
    for r, v in zip(runs, (2, 4, 8)):
        r.label = f"dsm={v}"
    legend = [t.get_text() for t in pareto_figure(runs).axes[0].get_legend().get_texts()]
    assert legend == ["dsm=2", "dsm=4", "dsm=8"]


def test_unknown_sweep_is_a_clear_error(sweep, capsys):
    assert main(["runs", "--sweep", "nope"]) == 1
    assert "no sweep matches 'nope'" in capsys.readouterr().err
    assert main(["report"]) == 2
