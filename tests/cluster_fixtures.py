"""The local SLURM cluster as tests see it: find a running one or start one.

The cluster itself is made by ``scripts/local-cluster`` (see docs/testing.md); this module only
describes it (:class:`LocalCluster`, read from the ``cluster.json`` the script writes next to
``slurm.conf``) and wraps the few SLURM commands tests need. Every command gets ``SLURM_CONF``
explicitly: without it SLURM clients go looking for a controller through DNS.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOCAL_CLUSTER_SCRIPT = REPO / "scripts" / "local-cluster"
REQUIRED_TOOLS = ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "munged", "mungekey")
TERMINAL_JOB_STATES = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
     "DEADLINE", "PREEMPTED"}
)


@dataclass(frozen=True)
class LocalCluster:
    """A running local cluster: where its config is and what it offers."""

    slurm_conf: Path
    state_dir: Path
    nodes: tuple[str, ...]
    gpus_per_node: int
    cpus_per_node: int
    partition: str
    started_here: bool = False

    @classmethod
    def from_state_dir(cls, state_dir: Path, *, started_here: bool = False) -> LocalCluster:
        info = json.loads((Path(state_dir) / "cluster.json").read_text())
        return cls(
            slurm_conf=Path(info["slurm_conf"]),
            state_dir=Path(info["state_dir"]),
            nodes=tuple(info["nodes"]),
            gpus_per_node=int(info["gpus_per_node"]),
            cpus_per_node=int(info["cpus_per_node"]),
            partition=info["partition"],
            started_here=started_here,
        )

    def env(self, **extra: str) -> dict[str, str]:
        """os.environ with this cluster's SLURM_CONF (plus extra variables)."""
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf), **extra}

    def run(self, *argv: str, timeout: float = 60, cwd: Path | str | None = None,
            check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command (sbatch, squeue, ...) against this cluster; text output."""
        return subprocess.run(list(argv), env=self.env(), cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, check=check, stdin=subprocess.DEVNULL)

    def sbatch(self, *args: str, cwd: Path | str | None = None) -> int:
        """Submit (``sbatch --parsable ARGS``) and return the job id; raise with stderr on failure."""
        proc = self.run("sbatch", "--parsable", *args, cwd=cwd)
        if proc.returncode != 0:
            raise RuntimeError(f"sbatch {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return int(proc.stdout.strip().split(";")[0])

    def job_state(self, job_id: int) -> str:
        proc = self.run("scontrol", "show", "job", "-o", str(job_id), check=True)
        match = re.search(r"\bJobState=(\S+)", proc.stdout)
        if not match:
            raise RuntimeError(f"no JobState for job {job_id}: {proc.stdout!r}")
        return match.group(1)

    def wait_job(self, job_id: int, timeout: float = 60) -> str:
        """Wait until the job reaches a terminal state and return it (e.g. COMPLETED)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state(job_id)
            if state in TERMINAL_JOB_STATES:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state} after {timeout}s")
            time.sleep(0.1)

    def node_states(self) -> dict[str, str]:
        """{node name: sinfo state} for this cluster's partition, e.g. {"node1": "idle"}."""
        proc = self.run("sinfo", "-h", "-N", "-p", self.partition, "-o", "%N %t", check=True)
        return dict(line.split() for line in proc.stdout.splitlines() if line.strip())

    def wait_idle(self, timeout: float = 30) -> dict[str, str]:
        """Wait until every node is idle (jobs of earlier tests may still be completing)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if set(states) == set(self.nodes) and all(s == "idle" for s in states.values()):
                return states
            if time.monotonic() > deadline:
                return states
            time.sleep(0.1)

    def is_responding(self) -> bool:
        try:
            proc = self.run("scontrol", "ping", timeout=15)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return proc.returncode == 0 and "is UP" in proc.stdout


def skip_or_fail(reason: str) -> None:
    """Skip with the reason, but fail under CI=true: CI must run everything."""
    __tracebackhide__ = True  # report the caller's line, not this one
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: not skipping)", pytrace=False)
    pytest.skip(reason)


def unavailable_reason() -> str | None:
    """Why this machine cannot run a local cluster, or None when it can."""
    if os.geteuid() != 0:
        return "local SLURM cluster needs root (slurmd runs jobs as root here)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return (f"local SLURM cluster: {', '.join(missing)} not installed "
                "(scripts/install-system-deps, or run the suite with `make test`)")
    return None


def running_cluster_from_env() -> LocalCluster | None:
    """The cluster SLURM_CONF points to, when scripts/local-cluster made it and it answers."""
    conf = os.environ.get("SLURM_CONF")
    if not conf or not (Path(conf).parent / "cluster.json").is_file():
        return None
    cluster = LocalCluster.from_state_dir(Path(conf).parent)
    return cluster if cluster.is_responding() else None


def in_loopback_only_netns() -> bool:
    """True inside a network namespace whose only interface is lo and which has no IPv4 route
    besides loopback (what scripts/in-netns makes)."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        return False
    routes = Path("/proc/net/route").read_text().splitlines()[1:]
    return not [line for line in routes if line.strip()]


def free_loopback_ports(count: int, *, contiguous: bool = False, exclude: set[int] | None = None) -> list[int]:
    """Ports that are free on 127.0.0.1 right now (the kernel picks them from its ephemeral range)."""
    exclude = exclude or set()
    if not contiguous:
        ports: list[int] = []
        holders: list[socket.socket] = []  # held open until all are picked, so all differ
        try:
            while len(ports) < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                holders.append(sock)
                sock.bind(("127.0.0.1", 0))
                if sock.getsockname()[1] not in exclude:
                    ports.append(sock.getsockname()[1])
        finally:
            for sock in holders:
                sock.close()
        return ports
    for _ in range(200):
        first = _bindable_port()
        block = list(range(first, first + count))
        if block[-1] < 65536 and not exclude.intersection(block) and all(_is_free(p) for p in block):
            return block
    raise RuntimeError(f"no {count} contiguous free ports on 127.0.0.1")


def _bindable_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_cluster(*, nodes: int = 4, gpus: int = 4, cpus: int = 16, partition: str = "batch",
                  state_dir: Path | None = None, timeout: float = 120) -> LocalCluster:
    """Start a cluster with its own state dir and free ports (``gpus=0``: no GRES configured)."""
    if state_dir is None:
        # Not under pytest's tmp dir: munged runs as user munge and must reach its socket.
        state_dir = Path(tempfile.mkdtemp(prefix="srt-cluster.", dir="/var/tmp"))
    ctld_port, = free_loopback_ports(1)
    slurmd_ports = free_loopback_ports(nodes, contiguous=True, exclude={ctld_port})
    env = {
        **os.environ,
        "SRT_CLUSTER_DIR": str(state_dir),
        "SRT_CLUSTER_NODES": str(nodes),
        "SRT_CLUSTER_GPUS": str(gpus),
        "SRT_CLUSTER_GRES": "1" if gpus else "0",
        "SRT_CLUSTER_CPUS": str(cpus),
        "SRT_CLUSTER_PARTITION": partition,
        "SRT_CLUSTER_CTLD_PORT": str(ctld_port),
        "SRT_CLUSTER_SLURMD_PORT": str(slurmd_ports[0]),
    }
    proc = subprocess.run([str(LOCAL_CLUSTER_SCRIPT), "up"], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/local-cluster up failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return LocalCluster.from_state_dir(state_dir, started_here=True)


def stop_cluster(cluster: LocalCluster, *, remove_state: bool = True) -> None:
    """Stop a cluster (jobs cancelled first); remove its state dir if asked."""
    env = {**os.environ, "SRT_CLUSTER_DIR": str(cluster.state_dir), "SLURM_CONF": str(cluster.slurm_conf)}
    subprocess.run([str(LOCAL_CLUSTER_SCRIPT), "down"], env=env, capture_output=True, text=True,
                   timeout=120, stdin=subprocess.DEVNULL, check=True)
    if remove_state:
        shutil.rmtree(cluster.state_dir, ignore_errors=True)
        Path(f"{cluster.state_dir}.lock").unlink(missing_ok=True)
