"""The requeue after SLURM's time-limit warning: the cap (slurm.max_requeues vs SLURM_RESTART_COUNT)
and a failing scontrol are recorded in status.json and events.jsonl. The requeue itself runs on the
local cluster (tests/integration/test_lifecycle_slurm.py)."""

from __future__ import annotations

import json

import anyio
import pytest

from srt_agent.agent.requeue import requeue_after_warning
from srt_agent.agent.status import StatusWriter
from srt_agent.job_config import SlurmSection


def _writer(tmp_path) -> StatusWriter:
    w = StatusWriter(tmp_path, job_id="4242", name="t", executor="slurm")
    w.update(state="cancelled", message="stopped by SIGUSR1 (time limit near); finished work is kept")
    return w


def _events(tmp_path) -> list[dict]:
    return [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_the_cap_stops_the_requeue_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    w = _writer(tmp_path)
    assert anyio.run(requeue_after_warning, w, 1) is False
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "cancelled"
    assert status["requeue"] == {"requeued": False, "restarts": 1,
                                 "reason": "slurm.max_requeues (1) reached after 1 requeue(s)"}
    assert status["message"].endswith("; not requeued: slurm.max_requeues (1) reached after 1 requeue(s)")
    ev = [e for e in _events(tmp_path) if e["event"].startswith("requeue")]
    assert [e["event"] for e in ev] == ["requeue_skipped"] and ev[0]["max_requeues"] == 1


def test_max_requeues_zero_never_requeues(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    assert anyio.run(requeue_after_warning, _writer(tmp_path), 0) is False
    assert json.loads((tmp_path / "status.json").read_text())["requeue"]["requeued"] is False


def test_a_failing_scontrol_is_recorded_not_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol here
    assert anyio.run(requeue_after_warning, _writer(tmp_path), 1) is False
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["requeue"]["requeued"] is False
    assert status["requeue"]["reason"].startswith("scontrol requeue 4242 failed")
    assert [e["event"] for e in _events(tmp_path) if e["event"].startswith("requeue")] == ["requeued",
                                                                                          "requeue_skipped"]


def test_outside_slurm_nothing_happens(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    w = _writer(tmp_path)
    assert anyio.run(requeue_after_warning, w, 1) is False
    assert "requeue" not in json.loads((tmp_path / "status.json").read_text())


def test_max_requeues_key():
    assert SlurmSection().max_requeues == 1
    with pytest.raises(ValueError):
        SlurmSection(max_requeues=-1)
