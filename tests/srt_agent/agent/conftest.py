"""Fixtures for running the real agent with the local executor and the simulated engine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from agent_local_support import LocalRun

from srt_agent.sim.model_dir import write_model_dir


@pytest.fixture(scope="session")
def sim_model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sim-model") / "model"
    write_model_dir(str(path))
    return path


@pytest.fixture
def local_run(tmp_path, sim_model_dir) -> LocalRun:
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "executor": "local", "container_runtime": "none", "node_addresses": "loopback",
        "model_paths": {"sim-model": str(sim_model_dir)}}))
    return LocalRun(workdir=tmp_path, model_dir=sim_model_dir)


@pytest.fixture
def scripted_env(monkeypatch, sim_model_dir):
    """In-process agent tests (scripted_support): the job id comes from metadata.json, not from this
    shell's SLURM job; the run directories share the session's simulated model directory."""
    import scripted_support

    for name in ("SLURM_JOB_ID", "SRT_JOB_ID", "SRT_EXECUTOR", "SRT_FORCE_RESUME", "SRT_SECRET_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(scripted_support, "MODEL_DIR", sim_model_dir)
