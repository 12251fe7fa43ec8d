"""etcd's data and NATS's JetStream store live on node-local disk, never in the shared run directory.

etcd fsyncs its write-ahead log; on Lustre/GPFS that stalls heartbeats and loses leadership under
load. Their logs stay in the run directory (they write to stdout, i.e. logs/<node>_<name>.log);
only the state goes to `node_state_dir(...)`, which the agent removes at teardown.
"""

from __future__ import annotations

import shutil
from pathlib import Path

STATE_PREFIX = "srt-"


def node_state_dir(node_local_dir: str | None, job_id: str, slurm_tmpdir: str | None = None) -> str:
    """The cluster file's node_local_dir, else $SLURM_TMPDIR, else /tmp; always a job-owned
    `srt-<jobid>` subdirectory (exactly what remove_state_dir deletes)."""
    root = (node_local_dir or slurm_tmpdir or "/tmp").rstrip("/")
    return f"{root}/{STATE_PREFIX}{job_id}"


def remove_state_dir(path: str | None) -> bool:
    """Delete the job's state directory (on the agent's node, the head node where etcd/NATS run).

    Refuses anything that is not an absolute `srt-<jobid>` directory. True when something was removed.
    """
    if not path:
        return False
    p = Path(path)
    if not p.is_absolute() or not p.name.startswith(STATE_PREFIX) or p.is_symlink() or not p.is_dir():
        return False
    shutil.rmtree(p, ignore_errors=True)
    return not p.exists()
