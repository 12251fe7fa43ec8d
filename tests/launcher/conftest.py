"""Fixtures of the launcher tests: no SLURM controller to ask, and the shared run directories."""

from __future__ import annotations

from pathlib import Path

import pytest
import run_fixtures as rf


@pytest.fixture
def no_slurm(monkeypatch):
    """Runs here are local or fake SLURM ids: never ask a real controller about them.
    A test module takes it with `pytestmark = pytest.mark.usefixtures("no_slurm")`."""
    monkeypatch.setenv("SLURM_CONF", "/nonexistent/slurm.conf")


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> Path:
    """Built once, before any test's capsys starts capturing (session fixtures are set up first)."""
    return rf.shared_logs(tmp_path_factory)


@pytest.fixture
def logs(shared_runs: Path) -> Path:
    """A logs directory with one run of each kind (run_fixtures.SHARED_IDS). Read it, never change
    it (run_fixtures.copy_logs gives a private copy). The running run's agent (on another host) is
    known alive only by a fresh status.json: it is touched, so that the run does not read as
    "agent died" once the session is older than run_lookup.LOCAL_STALE_S."""
    rf.touch(rf.run_dir(shared_runs, "running"))
    return shared_runs
