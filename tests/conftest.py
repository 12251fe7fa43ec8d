"""Fixtures shared by the whole suite: the local SLURM cluster, run dirs, free loopback ports.

Tests that need the cluster take the ``local_cluster`` fixture and carry ``@pytest.mark.cluster``.
Where the machine cannot run a cluster (not root, SLURM not installed) they are skipped with the
reason shown by ``pytest -rs``; with CI=true they fail instead, so CI never passes by skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

try:
    from cluster_fixtures import (
        LocalCluster,
        free_loopback_ports,
        running_cluster_from_env,
        skip_or_fail,
        start_cluster,
        stop_cluster,
        unavailable_reason,
    )
except ImportError:  # tests/ imported as a package
    from tests.cluster_fixtures import (
        LocalCluster,
        free_loopback_ports,
        running_cluster_from_env,
        skip_or_fail,
        start_cluster,
        stop_cluster,
        unavailable_reason,
    )


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[LocalCluster]:
    """The local SLURM cluster: the one SLURM_CONF points to (scripts/in-netns, `make cluster-up`)
    when it answers, else a new one started for this session and stopped after it.
    SLURM_CONF is set in os.environ for the session, so code under test finds the cluster."""
    cluster = running_cluster_from_env()
    if cluster is None:
        reason = unavailable_reason()
        if reason:
            skip_or_fail(reason)
        cluster = start_cluster()
    saved = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.slurm_conf)
    try:
        yield cluster
    finally:
        if saved is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = saved
        if cluster.started_here:
            stop_cluster(cluster)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fresh, empty run directory for one test."""
    path = tmp_path / "run"
    path.mkdir()
    return path


_handed_out: set[int] = set()


@pytest.fixture
def free_ports() -> Callable[[int], list[int]]:
    """free_ports(n) -> n distinct ports free on 127.0.0.1, never repeated within the session."""

    def pick(count: int) -> list[int]:
        ports = free_loopback_ports(count, exclude=_handed_out)
        _handed_out.update(ports)
        return ports

    return pick


@pytest.fixture
def free_port(free_ports: Callable[[int], list[int]]) -> int:
    """One port free on 127.0.0.1."""
    return free_ports(1)[0]


GOLDEN_SRUN_CASES = Path(__file__).resolve().parent / "golden" / "dry-run-srun"


@pytest.fixture
def dry_run_variant(tmp_path: Path) -> Callable[..., Path]:
    """`srtctl dry-run` of a golden dry-run-srun case (job.yaml + srtslurm.yaml) changed by edit(job):
    returns the dry-run's output directory (the run must succeed)."""
    def run(edit: Callable[[dict], None], case: str = "container-dynamo") -> Path:
        case_dir = GOLDEN_SRUN_CASES / case
        job = yaml.safe_load((case_dir / "job.yaml").read_text())
        edit(job)
        path = tmp_path / "job.yaml"
        path.write_text(yaml.safe_dump(job))
        env = {**os.environ, "SRTSLURM_CONFIG": str(case_dir / "srtslurm.yaml"),
               "PYTHONPATH": str(GOLDEN_SRUN_CASES.parents[2])}
        env.pop("SRTCTL_ROOT", None)
        res = subprocess.run([sys.executable, "-m", "launcher.cli", "dry-run", "-f", str(path), "--output-dir",
                              str(tmp_path / "out"), "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stderr
        (out,) = (tmp_path / "out").iterdir()
        return out
    return run
