"""etcd/NATS state on node-local disk (cluster file node_local_dir, $SLURM_TMPDIR, /tmp), removed at teardown."""

from __future__ import annotations

import pytest

from srt_agent.cluster_config import ClusterConfig
from srt_agent.node_state import node_state_dir, remove_state_dir


def test_state_dir_prefers_the_cluster_key_then_slurm_tmpdir_then_tmp():
    assert node_state_dir("/local/scratch/", "42", "/slurm/tmp") == "/local/scratch/srt-42"
    assert node_state_dir(None, "42", "/slurm/tmp/42") == "/slurm/tmp/42/srt-42"
    assert node_state_dir(None, "42") == "/tmp/srt-42"


def test_cluster_key_must_be_absolute():
    with pytest.raises(ValueError, match="absolute path"):
        ClusterConfig(node_local_dir="scratch")
    assert ClusterConfig(node_local_dir="/scratch").node_local_dir == "/scratch"


def test_remove_only_deletes_a_job_state_dir(tmp_path):
    state = tmp_path / "srt-7"
    (state / "etcd" / "member").mkdir(parents=True)
    (state / "etcd" / "member" / "wal").write_text("x")
    other = tmp_path / "keep"
    other.mkdir()
    assert remove_state_dir(str(state)) and not state.exists()
    assert not remove_state_dir(str(other)) and other.exists()
    assert not remove_state_dir(None) and not remove_state_dir("relative/srt-1")
