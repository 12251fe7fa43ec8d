"""launcher.sbatch without SLURM: error translation, and submit/release/cancel against fake
sbatch/scontrol/scancel scripts put first on PATH (they record their arguments)."""

import os
import shlex
from pathlib import Path

import pytest

from launcher import sbatch
from srt_agent.errors import SubmitError

GRES = "sbatch: error: Invalid generic resource (gres) specification\n"
SEGMENT_NEW = "sbatch: error: Invalid --segment specification\n"
SEGMENT_OLD = "sbatch: unrecognized option '--segment=2'\nTry \"sbatch --help\" for more information\n"


def fake_bin(tmp: Path, monkeypatch, name: str, *, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
    """A `name` command that appends its argv to tmp/name.calls (one line per call) and answers as told."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp / f"{name}.calls"
    (tmp / f"{name}.out").write_text(stdout)
    (tmp / f"{name}.err").write_text(stderr)
    script = bindir / name
    script.write_text(f"#!/bin/sh\n{{ for a in \"$@\"; do printf '%s\\037' \"$a\"; done; echo; }} >> {shlex.quote(str(log))}\n"
                      f"cat {shlex.quote(str(tmp / (name + '.out')))}\n"
                      f"cat {shlex.quote(str(tmp / (name + '.err')))} >&2\nexit {code}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\037")[:-1] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("stderr, setting", [(GRES, "use_gpus_per_node_directive: false"),
                                             (SEGMENT_NEW, "use_segment_sbatch_directive: false"),
                                             (SEGMENT_OLD, "use_segment_sbatch_directive: false")])
def test_explain_known_errors_names_the_cluster_file_fix(stderr, setting):
    text = sbatch.explain(stderr, "/home/u/srt/srtslurm.yaml")
    assert text.startswith("sbatch refused the job: sbatch")
    assert f"fix: set `{setting}` in /home/u/srt/srtslurm.yaml and submit again" in text
    assert sbatch.explain(stderr, None).endswith("in srtslurm.yaml and submit again")


def test_explain_unknown_error_passes_the_message_through():
    text = sbatch.explain("sbatch: error: Batch job submission failed: Invalid account\n", "/x.yaml")
    assert text == "sbatch refused the job: sbatch: error: Batch job submission failed: Invalid account"
    assert sbatch.explain("", None) == "sbatch refused the job: (no message)"


def test_submit_held_and_parses_job_id(tmp_path, monkeypatch):
    log = fake_bin(tmp_path, monkeypatch, "sbatch", stdout="4242;cluster\n")
    job_id = sbatch.submit(tmp_path / "job.sbatch", cluster_file=None)
    assert job_id == "4242"
    assert calls(log) == [["--parsable", "--hold", str(tmp_path / "job.sbatch")]]


def test_submit_without_hold_and_extra_args(tmp_path, monkeypatch):
    log = fake_bin(tmp_path, monkeypatch, "sbatch", stdout="7\n")
    assert sbatch.submit(Path("/r/job.sbatch"), cluster_file=None, hold=False, extra=["--export=ALL,X=1"]) == "7"
    assert calls(log) == [["--parsable", "--export=ALL,X=1", "/r/job.sbatch"]]


def test_submit_error_is_translated(tmp_path, monkeypatch):
    fake_bin(tmp_path, monkeypatch, "sbatch", stderr=GRES, code=1)
    with pytest.raises(SubmitError) as info:
        sbatch.submit(tmp_path / "job.sbatch", cluster_file="/site/srtslurm.yaml")
    assert "use_gpus_per_node_directive: false" in str(info.value) and "/site/srtslurm.yaml" in str(info.value)


def test_submit_unexpected_output(tmp_path, monkeypatch):
    fake_bin(tmp_path, monkeypatch, "sbatch", stdout="Submitted batch job 12\n")
    with pytest.raises(SubmitError, match="unexpected job id"):
        sbatch.submit(tmp_path / "job.sbatch", cluster_file=None)


def test_submit_without_sbatch(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SubmitError, match="sbatch not found"):
        sbatch.submit(tmp_path / "job.sbatch", cluster_file=None)


def test_release_and_cancel(tmp_path, monkeypatch):
    rel = fake_bin(tmp_path, monkeypatch, "scontrol")
    can = fake_bin(tmp_path, monkeypatch, "scancel")
    sbatch.release("42")
    assert calls(rel) == [["release", "42"]] and calls(can) == []
    sbatch.cancel("43")
    assert calls(can) == [["43"]]


def test_failed_release_cancels_the_held_job(tmp_path, monkeypatch):
    fake_bin(tmp_path, monkeypatch, "scontrol", stderr="scontrol: error: Access denied\n", code=1)
    can = fake_bin(tmp_path, monkeypatch, "scancel")
    with pytest.raises(SubmitError, match="could not release held job 42: scontrol: error: Access denied"):
        sbatch.release("42")
    assert calls(can) == [["42"]]
