"""The cluster file: defaults, strictness (unknown keys are errors), lookup order."""

import pytest

from srt_agent.cluster_config import (
    CLUSTER_FILE_ENV,
    ClusterConfig,
    check_time_limit,
    find_cluster_file,
    load_cluster_config,
)
from srt_agent.errors import ConfigError

FULL = """\
default_account: "acct"
default_partition: "batch"
default_time_limit: "4:00:00"
gpus_per_node: 8
use_gpus_per_node_directive: false
use_segment_sbatch_directive: false
srtctl_root: "/opt/srt"
model_paths:
  deepseek-r1: "/models/DeepSeek-R1"
containers:
  latest: "/containers/latest.sqsh"
cloud:
  endpoint_url: "https://s3.example.com"
  bucket: "results"
  prefix: "team/"
"""


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No cluster file anywhere unless a test puts one there."""
    monkeypatch.delenv(CLUSTER_FILE_ENV, raising=False)
    monkeypatch.delenv("SRTCTL_ROOT", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_defaults():
    c = ClusterConfig()
    assert c.gpus_per_node == 4
    assert c.use_gpus_per_node_directive and c.use_segment_sbatch_directive
    assert c.default_account is None and c.model_paths == {} and c.cloud is None
    assert c.executor == "slurm" and c.container_runtime == "pyxis"
    assert c.source is None


def test_full_file_loads(isolated):
    p = isolated / "srtslurm.yaml"
    p.write_text(FULL)
    c = load_cluster_config(p)
    assert c.default_account == "acct" and c.gpus_per_node == 8
    assert not c.use_gpus_per_node_directive and not c.use_segment_sbatch_directive
    assert c.model_paths == {"deepseek-r1": "/models/DeepSeek-R1"}
    assert c.cloud is not None and c.cloud.bucket == "results" and c.cloud.prefix == "team/"
    assert c.source == str(p)


@pytest.mark.parametrize("extra, key, guess", [
    ("default_acount: x\n", "default_acount", "default_account"),
    ("gpu_per_node: 8\n", "gpu_per_node", "gpus_per_node"),
    ("use_segment_directive: false\n", "use_segment_directive", "use_segment_sbatch_directive"),
    ("model_path:\n  a: /b\n", "model_path", "model_paths"),
])
def test_unknown_key_is_an_error_never_a_silent_drop(isolated, extra, key, guess):
    p = isolated / "srtslurm.yaml"
    p.write_text(FULL + extra)
    with pytest.raises(ConfigError) as info:
        load_cluster_config(p)
    line = FULL.count("\n") + 1
    assert str(info.value).startswith(f"{p}:{line}: {key}: unknown key '{key}'")
    assert f"did you mean '{guess}'?" in str(info.value)


def test_unknown_key_in_cloud_section(isolated):
    p = isolated / "srtslurm.yaml"
    p.write_text(FULL + "  regoin: eu\n")
    with pytest.raises(ConfigError) as info:
        load_cluster_config(p)
    assert info.value.key == "cloud.regoin" and "did you mean 'region'?" in str(info.value)


@pytest.mark.parametrize("text, key", [
    ("gpus_per_node: 0\n", "gpus_per_node"),
    ("gpus_per_node: four\n", "gpus_per_node"),
    ("default_time_limit: 'two hours'\n", "default_time_limit"),
    ("model_paths:\n  r1: relative/path\n", "model_paths"),
    ("containers:\n  latest: img.sqsh\n", "containers"),
    ("executor: kubernetes\n", "executor"),
    ("cloud:\n  prefix: x\n", "cloud.bucket"),
    ("use_segment_sbatch_directive: maybe\n", "use_segment_sbatch_directive"),
])
def test_bad_values(isolated, text, key):
    p = isolated / "srtslurm.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_cluster_config(p)
    assert info.value.key == key
    assert info.value.line == 1 or key == "cloud.bucket"


@pytest.mark.parametrize("value", ["4:00:00", "30", "1-00:00:00", "02:00", "100:00:00"])
def test_time_limit_accepts_slurm_formats(value):
    assert check_time_limit(value) == value


@pytest.mark.parametrize("value", ["4h", "1:2:3:4", "", "02:00:00; rm -rf /", "02:00:00\n"])
def test_time_limit_rejects_other_text(value):
    with pytest.raises(ValueError):
        check_time_limit(value)


def test_no_file_anywhere_gives_defaults(isolated):
    assert find_cluster_file() is None
    c = load_cluster_config()
    assert c == ClusterConfig() and c.source is None


def test_lookup_order_env_then_cwd_then_srtctl_root(isolated, monkeypatch):
    root = isolated / "root"
    root.mkdir()
    (root / "srtslurm.yaml").write_text("default_account: from-root\n")
    monkeypatch.setenv("SRTCTL_ROOT", str(root))
    assert load_cluster_config().default_account == "from-root"
    assert find_cluster_file() == root / "srtslurm.yaml"

    cwd_file = isolated / "work" / "srtslurm.yaml"
    cwd_file.write_text("default_account: from-cwd\n")
    assert load_cluster_config().default_account == "from-cwd"

    env_file = isolated / "elsewhere.yaml"
    env_file.write_text("default_account: from-env\n")
    monkeypatch.setenv(CLUSTER_FILE_ENV, str(env_file))
    c = load_cluster_config()
    assert c.default_account == "from-env" and c.source == str(env_file)


def test_srtctl_root_argument(isolated):
    root = isolated / "r"
    root.mkdir()
    (root / "srtslurm.yaml").write_text("gpus_per_node: 8\n")
    assert find_cluster_file(srtctl_root=str(root)) == root / "srtslurm.yaml"
    assert find_cluster_file(cwd=root) == root / "srtslurm.yaml"


def test_env_pointing_to_missing_file_is_an_error(isolated, monkeypatch):
    monkeypatch.setenv(CLUSTER_FILE_ENV, str(isolated / "missing.yaml"))
    (isolated / "work" / "srtslurm.yaml").write_text("default_account: cwd\n")
    with pytest.raises(ConfigError) as info:
        load_cluster_config()
    assert CLUSTER_FILE_ENV in str(info.value) and "missing.yaml" in str(info.value)


def test_explicit_path_wins(isolated, monkeypatch):
    (isolated / "work" / "srtslurm.yaml").write_text("default_account: cwd\n")
    other = isolated / "other.yaml"
    other.write_text("default_account: explicit\n")
    assert load_cluster_config(other).default_account == "explicit"


def test_example_cluster_file_validates():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "configs" / "srtslurm.example.yaml"
    c = load_cluster_config(example)
    assert c.model_paths and c.containers
