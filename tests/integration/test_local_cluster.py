"""The local SLURM cluster behaves like the real thing in the ways srt-slurm relies on.

Runs against the cluster SLURM_CONF points to (``make test`` starts one inside a loopback-only
network namespace) or one the ``local_cluster`` fixture starts.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    from cluster_fixtures import (
        LOCAL_CLUSTER_SCRIPT,
        LocalCluster,
        in_loopback_only_netns,
        skip_or_fail,
        start_cluster,
        stop_cluster,
        unavailable_reason,
    )
except ImportError:  # tests/ imported as a package
    from tests.cluster_fixtures import (
        LOCAL_CLUSTER_SCRIPT,
        LocalCluster,
        in_loopback_only_netns,
        skip_or_fail,
        start_cluster,
        stop_cluster,
        unavailable_reason,
    )

SEGMENT_REJECTED = "sbatch: unrecognized option '--segment=2'"
GRES_REJECTED = "sbatch: error: Invalid generic resource (gres) specification"


@pytest.fixture(scope="module")
def gpuless_cluster() -> Iterator[LocalCluster]:
    """A second, one-node cluster with no GRES configured at all (GresTypes unset)."""
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    cluster = start_cluster(nodes=1, gpus=0)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def recorded_pids(cluster: LocalCluster) -> dict[str, int]:
    return {f.stem: int(f.read_text().split()[0]) for f in (cluster.state_dir / "pids").glob("*.pid")}


def is_running(pid: int) -> bool:
    """Alive and not a zombie (killed daemons linger as zombies until init reaps them)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def has_our_conf(pid: int, cluster: LocalCluster) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False
    return f"SLURM_CONF={cluster.slurm_conf}".encode() in environ


@pytest.mark.cluster
def test_every_node_is_idle_with_its_gpus(local_cluster: LocalCluster) -> None:
    assert len(local_cluster.nodes) >= 2
    assert local_cluster.wait_idle() == {node: "idle" for node in local_cluster.nodes}
    gres = local_cluster.run("sinfo", "-h", "-N", "-o", "%N %G", check=True).stdout.split()
    assert dict(zip(gres[::2], gres[1::2])) == {
        node: f"gpu:{local_cluster.gpus_per_node}" for node in local_cluster.nodes
    }


@pytest.mark.cluster
def test_two_node_job_sees_distinct_nodes_and_all_gpus(local_cluster: LocalCluster, run_dir: Path) -> None:
    gpus = local_cluster.gpus_per_node
    out = shlex.quote(str(run_dir))
    script = run_dir / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        "set -eu\n"
        f"echo \"$SLURMD_NODENAME\" > {out}/batch-node\n"
        "srun -N2 -n2 --overlap sh -c "
        "'echo \"$SLURMD_NODENAME $CUDA_VISIBLE_DEVICES\" > \"$1/step.$SLURMD_NODENAME\"' "
        f"_ {out}\n"
    )
    job_id = local_cluster.sbatch(
        "-N2", f"--gpus-per-node={gpus}", "-t", "2", "-o", str(run_dir / "job.out"), str(script),
        cwd=run_dir,
    )
    assert local_cluster.wait_job(job_id) == "COMPLETED", (run_dir / "job.out").read_text()

    steps = {p.name: p.read_text().split() for p in run_dir.glob("step.*")}
    all_gpus = ",".join(str(i) for i in range(gpus))
    assert len(steps) == 2
    for name, (node, visible) in steps.items():
        assert name == f"step.{node}" and node in local_cluster.nodes
        assert visible == all_gpus
    assert (run_dir / "batch-node").read_text().strip() in {v[0] for v in steps.values()}


@pytest.mark.cluster
def test_segment_directive_is_rejected(local_cluster: LocalCluster, run_dir: Path) -> None:
    proc = local_cluster.run("sbatch", "--segment=2", "--wrap", "true", cwd=run_dir)
    assert proc.returncode == 255
    assert proc.stderr.splitlines()[0] == SEGMENT_REJECTED
    assert proc.stdout == ""


@pytest.mark.cluster
def test_gpus_per_node_rejected_without_gres(
    local_cluster: LocalCluster, gpuless_cluster: LocalCluster, run_dir: Path
) -> None:
    assert gpuless_cluster.wait_idle() == {"node1": "idle"}
    rejected = gpuless_cluster.run("sbatch", "--gpus-per-node=1", "--wrap", "true", cwd=run_dir)
    assert (rejected.returncode, rejected.stderr) == (1, GRES_REJECTED + "\n")

    # The same cluster runs a job without the directive, and a cluster with GPUs takes it.
    plain = gpuless_cluster.sbatch("--wrap", "true", "-o", str(run_dir / "plain.out"), cwd=run_dir)
    assert gpuless_cluster.wait_job(plain) == "COMPLETED"
    with_gpus = local_cluster.sbatch("--gpus-per-node=1", "--wrap", "true", "-o", str(run_dir / "gpu.out"),
                                     cwd=run_dir)
    assert local_cluster.wait_job(with_gpus) == "COMPLETED"


@pytest.mark.cluster
def test_up_resets_state_so_job_ids_restart(gpuless_cluster: LocalCluster, run_dir: Path) -> None:
    info = json.loads((gpuless_cluster.state_dir / "cluster.json").read_text())
    env = {
        **os.environ,
        "SRT_CLUSTER_DIR": str(gpuless_cluster.state_dir),
        "SRT_CLUSTER_NODES": "1",
        "SRT_CLUSTER_GRES": "0",
        "SRT_CLUSTER_CTLD_PORT": str(info["ctld_port"]),
        "SRT_CLUSTER_SLURMD_PORT": str(info["slurmd_ports"][0]),
    }

    ids = []
    for _ in range(2):
        subprocess.run([str(LOCAL_CLUSTER_SCRIPT), "up"], env=env, check=True, capture_output=True,
                       timeout=120, stdin=subprocess.DEVNULL)
        job_id = gpuless_cluster.sbatch("--wrap", "true", "-o", str(run_dir / "%j.out"), cwd=run_dir)
        assert gpuless_cluster.wait_job(job_id) == "COMPLETED"
        ids.append(job_id)
    assert ids[0] == ids[1]


@pytest.mark.cluster
def test_down_cancels_jobs_and_stops_every_daemon(run_dir: Path) -> None:
    reason = unavailable_reason()
    if reason:
        skip_or_fail(reason)
    cluster = start_cluster(nodes=2, gpus=0)
    try:
        pids = recorded_pids(cluster)
        assert set(pids) == {"munged", "slurmctld", "slurmd-node1", "slurmd-node2"}
        assert all(is_running(pid) for pid in pids.values())
        job_id = cluster.sbatch("-N2", "--wrap", "srun -N2 -n2 sleep 300", "-o", str(run_dir / "o"),
                                cwd=run_dir)
        deadline = time.monotonic() + 30
        while cluster.job_state(job_id) != "RUNNING":
            assert time.monotonic() < deadline, "job never started"
            time.sleep(0.1)
    finally:
        stop_cluster(cluster, remove_state=False)
    try:
        assert not [name for name, pid in pids.items() if is_running(pid)]
        sleepers = subprocess.run(["pgrep", "-f", "^sleep 300$"], capture_output=True, text=True,
                                  check=False).stdout.split()
        assert [pid for pid in sleepers if is_running(int(pid)) and has_our_conf(int(pid), cluster)] == []
    finally:
        stop_cluster(cluster)


def test_session_network_has_no_route_off_loopback() -> None:
    """Inside `make test` nothing but loopback exists: a connect to a documentation address
    (192.0.2.1, TEST-NET-1) fails at once with ENETUNREACH, no packet leaves."""
    if not in_loopback_only_netns():
        # Outside the namespace do not even try: the connect would really be sent.
        skip_or_fail("not inside the loopback-only network namespace (run via `make test` / scripts/in-netns)")
    assert [name for _, name in socket.if_nameindex()] == ["lo"]

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        socket.create_connection(listener.getsockname(), timeout=2).close()  # loopback works

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        started = time.monotonic()
        with pytest.raises(OSError) as excinfo:
            sock.connect(("192.0.2.1", 80))
    assert excinfo.value.errno == errno.ENETUNREACH
    assert time.monotonic() - started < 0.5
