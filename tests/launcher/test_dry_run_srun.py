"""Dry-run shows the srun line of every process (from srt_agent.srun, the builder the agent uses):
golden files for a container job, a host job and a job without a container on a pyxis cluster
(model.container: none); plan.json carries the same argv.

Golden files: tests/golden/dry-run-srun/<case>/expected/srun.txt; regenerate with SRT_UPDATE_GOLDEN=1."""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "dry-run-srun"
CASES = ("container-dynamo", "host-router", "nocontainer-dynamo")


def normalise(text: str) -> str:
    return re.sub(r"_\d{8}_\d{6}(?:_\d+)?(?=[/:_\s'\"]|$)", "_<TIMESTAMP>", text, flags=re.MULTILINE)


def dry_run(case: str, tmp_path: Path, *extra: str) -> Path:
    src = GOLDEN / case
    env = {**os.environ, "SRTSLURM_CONFIG": str(src / "srtslurm.yaml"), "PYTHONPATH": str(ROOT)}
    env.pop("SRTCTL_ROOT", None)
    out_dir = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "dry-run", "-f", str(src / "job.yaml"),
                          "--output-dir", str(out_dir), "--quiet", *extra],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    (out,) = out_dir.iterdir()
    return out


def started_by(commands: str) -> dict[str, str]:
    """process name -> the line under '# started by:' in its commands.txt block."""
    out = {}
    for block in commands.split("\n\n"):
        lines = block.strip("\n").splitlines()
        m = re.match(r"# (\S+)  \(", lines[0]) if lines else None
        if m and "# started by:" in lines:
            out[m.group(1)] = lines[lines.index("# started by:") + 1]
    return out


@pytest.mark.parametrize("case", CASES)
def test_srun_lines_match_golden_files(case, tmp_path):
    out = dry_run(case, tmp_path)
    commands = (out / "commands.txt").read_text()
    plan = json.loads((out / "plan.json").read_text())
    lines = started_by(commands)
    assert plan["executor"] == "slurm"
    assert list(lines) == [p["name"] for p in plan["processes"]], "every process shows how it is started"
    for p in plan["processes"]:
        assert shlex.split(lines[p["name"]]) == p["launch"], p["name"]
    got = normalise("".join(f"# {name}\n{line}\n" for name, line in lines.items()))
    want_path = GOLDEN / case / "expected" / "srun.txt"
    if os.environ.get("SRT_UPDATE_GOLDEN") == "1":
        want_path.parent.mkdir(parents=True, exist_ok=True)
        want_path.write_text(got)
    want = want_path.read_text()
    assert got == want, "srun lines differ from the golden file (SRT_UPDATE_GOLDEN=1 to accept):\n" + "".join(
        difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "dry-run"))


def test_container_steps_carry_the_pyxis_flags_and_host_steps_none(tmp_path):
    plan = json.loads((dry_run("container-dynamo", tmp_path) / "plan.json").read_text())
    run_dir = next(m.split(":")[0] for m in plan["container_mounts"] if m.endswith(":/logs"))
    assert "JOBID" in run_dir, "the run directory is a placeholder until sbatch names the job"
    for p in plan["processes"]:
        argv = p["launch"]
        assert argv[0] == "srun" and f"--nodelist={p['node']}" in argv and f"--job-name=srt-{p['name']}" in argv
        pyxis = [a for a in argv if a.startswith(("--container-", "--no-container-"))]
        if p["container"]:
            assert pyxis == ["--container-image=/containers/sglang+v0.5.5.sqsh", "--no-container-mount-home",
                             "--no-container-entrypoint",
                             "--container-mounts=" + ",".join(plan["container_mounts"])]
            assert argv[-2:] == ["bash", f"/logs/launch/{p['name']}.sh"]
        else:
            assert pyxis == [] and argv[-2:] == ["bash", f"{run_dir}/launch/{p['name']}.sh"]
    kinds = {p["kind"]: p["container"] for p in plan["processes"]}
    assert kinds == {"nats": False, "etcd": False, "worker": True, "frontend": True, "nginx": False}
    assert "/scratch/datasets:/datasets:ro" in plan["container_mounts"]


def test_local_dry_run_shows_the_local_launch(tmp_path):
    out = dry_run("host-router", tmp_path, "--local")
    plan = json.loads((out / "plan.json").read_text())
    assert plan["executor"] == "local"
    for p in plan["processes"]:
        assert p["launch"][0] == "bash" and p["launch"][1].endswith(f"/launch/{p['name']}.sh")
    commands = (out / "commands.txt").read_text()
    assert "srun" not in commands and "the processes apply would start" in commands


def test_no_container_custom_benchmark_script_matches_golden(tmp_path):
    """The script the agent runs once on the head node, outside any container: the run directory's
    own paths, SRT_FRONTEND_URL next to SRT_ENDPOINT_URL, AIPERF_ARTIFACT_DIR under results/."""
    out = dry_run("nocontainer-dynamo", tmp_path)
    got = normalise((out / "custom-benchmark.sh").read_text())
    want_path = GOLDEN / "nocontainer-dynamo" / "expected" / "custom-benchmark.sh"
    if os.environ.get("SRT_UPDATE_GOLDEN") == "1":
        want_path.write_text(got)
    want = want_path.read_text()
    assert got == want, "custom-benchmark.sh differs from the golden file (SRT_UPDATE_GOLDEN=1 to accept):\n" + "".join(
        difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "dry-run"))
