"""`make setup` prompts and srtslurm.yaml writing, run as a real process with piped stdin or a pty."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from launcher import setup_cmd
from srt_agent.cluster_config import load_cluster_config

ENV_VARS = ("SRTCTL_ACCOUNT", "SRTCTL_PARTITION", "SRTCTL_GPUS_PER_NODE", "SRTCTL_TIME_LIMIT", "SRTSLURM_CONFIG")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_VARS}
    env.update(extra)
    return env


def setup_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "launcher.setup_cmd", "--arch", "x86_64", "--skip-binaries",
            "--root", str(out.parent), "--output", str(out), *extra]


def run(out: Path, *extra: str, stdin_text: str | None = None, env: dict[str, str] | None = None,
        stdin=None) -> subprocess.CompletedProcess:
    return subprocess.run(setup_argv(out, *extra), input=stdin_text, text=True, capture_output=True, check=False,
                          env=env or clean_env(), timeout=60, stdin=stdin)


def values(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_piped_answers_fill_the_prompts(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    r = run(out, stdin_text="my-acct\n\n8\n02:00:00\n")
    assert r.returncode == 0, r.stderr
    data = values(out)
    assert data["default_account"] == "my-acct"
    assert data["default_partition"] == "batch"  # empty line -> default
    assert data["gpus_per_node"] == 8
    assert data["default_time_limit"] == "02:00:00"
    assert "SLURM account [restricted]: my-acct  (prompt)" in r.stdout
    assert "SLURM partition [batch]: batch  (default)" in r.stdout


def test_seed_defaults_when_stdin_is_empty(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    r = run(out, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    data = values(out)
    assert (data["default_account"], data["default_partition"], data["gpus_per_node"],
            data["default_time_limit"]) == ("restricted", "batch", 4, "4:00:00")
    assert data["srtctl_root"] == str(tmp_path)
    assert data["use_gpus_per_node_directive"] is True and data["use_segment_sbatch_directive"] is True
    assert data["model_paths"] == {} and data["containers"] == {}
    assert "cloud" not in data, "cloud stays a commented example"
    assert '# cloud:\n#   endpoint_url: "https://s3.example.com"' in out.read_text()


def test_idle_open_pipe_does_not_hang(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    start = time.monotonic()
    proc = subprocess.Popen(setup_argv(out), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=clean_env())
    try:
        _, stderr = proc.communicate(timeout=30)  # stdin is never written nor closed by us
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert time.monotonic() - start < 15
    assert values(out)["default_account"] == "restricted"


def test_flags_beat_env_beat_prompts(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    env = clean_env(SRTCTL_ACCOUNT="env-acct", SRTCTL_PARTITION="env-part", SRTCTL_TIME_LIMIT="1-00:00:00")
    r = run(out, "--account", "flag-acct", "--gpus-per-node", "2", stdin_text="piped-ignored\n", env=env)
    assert r.returncode == 0, r.stderr
    data = values(out)
    assert data["default_account"] == "flag-acct"
    assert data["default_partition"] == "env-part"
    assert data["default_time_limit"] == "1-00:00:00"
    assert data["gpus_per_node"] == 2
    assert "(--account)" in r.stdout and "($SRTCTL_PARTITION)" in r.stdout


def test_yes_uses_defaults_and_reads_nothing(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    r = run(out, "--yes", stdin_text="should-not-be-read\n")
    assert r.returncode == 0, r.stderr
    assert values(out)["default_account"] == "restricted"


@pytest.mark.parametrize("answers, message", [
    ("acct\nbatch\nfour\n", "GPUs per node must be a whole number"),
    ("acct\nbatch\n4\nsoon\n", "time limit must look like"),
    ("bad acct\n", "SLURM account must be"),
    ("acct\nbatch\n0\n", "between 1 and 64"),
])
def test_invalid_piped_answer_is_a_clear_error(tmp_path, answers, message):
    out = tmp_path / "srtslurm.yaml"
    r = run(out, stdin_text=answers)
    assert r.returncode == 1
    assert message in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_invalid_flag_names_the_flag(tmp_path):
    r = run(tmp_path / "srtslurm.yaml", "--time-limit", "4 hours", "--yes")
    assert r.returncode == 1 and "--time-limit:" in r.stderr


def test_existing_file_is_never_overwritten_without_force(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    out.write_text("default_account: mine\nmodel_paths:\n  m: /models/m\n")
    before = out.read_text()
    r = run(out, "--account", "other", stdin_text="x\ny\n")
    assert r.returncode == 0, r.stderr
    assert out.read_text() == before
    assert "already exists; left unchanged" in r.stdout and "--force" in r.stdout

    r = run(out, "--account", "other", "--force", "--yes")
    assert r.returncode == 0, r.stderr
    assert values(out)["default_account"] == "other"


def pty_run(out: Path, answers: list[str], *extra: str) -> tuple[int, str]:
    """Run setup on a real terminal; type each answer only after its prompt appears."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(setup_argv(out, *extra), stdin=slave, stdout=slave, stderr=slave, env=clean_env(),
                            close_fds=True)
    os.close(slave)
    seen, pending = b"", list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
                if pending and seen.rstrip().endswith((b":", b"]:")):
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=10)
    finally:
        proc.kill()
        os.close(master)
    return rc, seen.decode(errors="replace")


def test_terminal_prompts_retry_invalid_input_and_ask_before_overwrite(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    out.write_text("default_account: keep-me\n")

    rc, screen = pty_run(out, ["n"])
    assert rc == 0, screen
    assert "already exists. Overwrite it? [y/N]" in screen
    assert out.read_text() == "default_account: keep-me\n"

    rc, screen = pty_run(out, ["y", "tty-acct", "gpu-part", "many", "8", ""])
    assert rc == 0, screen
    assert "GPUs per node must be a whole number" in screen and "try again" in screen
    data = values(out)
    assert (data["default_account"], data["default_partition"], data["gpus_per_node"],
            data["default_time_limit"]) == ("tty-acct", "gpu-part", 8, "4:00:00")


@pytest.mark.parametrize("weird_root", ['/tmp/a b/"quoted"/x: #not-a-comment', "/tmp/ünïcode/{braces}/[x]"])
def test_values_are_quoted_safely(tmp_path, weird_root):
    values_in = {"default_account": "acct", "default_partition": "p1,p2",
                 "gpus_per_node": 4, "default_time_limit": "4:00:00"}
    text = setup_cmd.render_cluster_file(values_in, Path(weird_root))
    out = tmp_path / "srtslurm.yaml"
    setup_cmd.write_cluster_file(out, text)
    cfg = load_cluster_config(out)
    assert cfg.srtctl_root == weird_root
    assert cfg.default_partition == "p1,p2"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_generated_file_validates_with_the_cluster_model(tmp_path):
    out = tmp_path / "srtslurm.yaml"
    r = run(out, "--no-segment-directive", "--yes")
    assert r.returncode == 0, r.stderr
    cfg = load_cluster_config(out)
    assert cfg.default_account == "restricted" and cfg.gpus_per_node == 4
    assert cfg.use_segment_sbatch_directive is False and cfg.use_gpus_per_node_directive is True
    assert cfg.cloud is None


def test_default_root_is_the_checkout():
    root = setup_cmd.detect_srtctl_root()
    assert (root / "pyproject.toml").is_file() and (root / "templates" / "srtslurm.yaml.j2").is_file()
