"""The resume ledger: fingerprints, finished phases and points, refusing a changed config."""

from __future__ import annotations

import json

import pytest

from srt_agent.agent.ledger import Ledger, fingerprint
from srt_agent.errors import ResumeError

JOB = {"name": "a", "health": {"worker_timeout_s": 60}, "benchmark": {"isl": 1024, "osl": 128}}


def test_the_fingerprint_ignores_name_and_health_but_not_what_is_measured():
    fp = fingerprint(JOB)
    assert fingerprint({**JOB, "name": "b", "health": {"worker_timeout_s": 1}}) == fp
    assert fingerprint({**JOB, "benchmark": {"isl": 1024, "osl": 256}}) != fp
    assert fingerprint(dict(reversed(list(JOB.items())))) == fp  # key order does not matter
    assert len(fp) == 16


def test_finished_work_survives_into_the_next_attempt(tmp_path):
    path = tmp_path / "ledger.json"
    first = Ledger(path, "fp1")
    assert not first.resumed and not first.phase_done("benchmark")
    first.mark_point("c16", "results/c16.json")
    first.mark_phase("profiling", files=["p.json"])
    on_disk = json.loads(path.read_text())  # every mark is saved at once
    assert on_disk["points"] == {"c16": "results/c16.json"} and on_disk["phases"]["profiling"]["files"] == ["p.json"]
    second = Ledger(path, "fp1")
    assert second.resumed and len(second.data["attempts"]) == 2
    assert second.point_done("c16") == "results/c16.json" and second.point_done("c32") is None
    assert second.phase_done("profiling")


def test_a_changed_config_refuses_to_resume_unless_forced(tmp_path):
    path = tmp_path / "ledger.json"
    Ledger(path, "fp1").mark_point("c1", "results/c1.json")
    with pytest.raises(ResumeError, match=rf"fingerprint fp1 -> fp2.*--resume {tmp_path} --force"):
        Ledger(path, "fp2")
    assert json.loads(path.read_text())["fingerprint"] == "fp1"  # the refused attempt wrote nothing
    forced = Ledger(path, "fp2", force=True)
    assert forced.data["fingerprint"] == "fp2" and forced.data["forced_from"] == ["fp1"]
    assert forced.point_done("c1") == "results/c1.json"
