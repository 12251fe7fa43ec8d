"""`srtctl apply` without SLURM: fake sbatch/scontrol/scancel first on PATH record what apply does.
Checks the held-submit protocol, run directory contents, error translation, staging cleanup, and
that bad tags or setup scripts stop before anything is submitted."""

import json
import os
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main

ROOT = Path(__file__).resolve().parents[2]
GRES = "sbatch: error: Invalid generic resource (gres) specification\n"


def fake_bin(tmp: Path, monkeypatch, name: str, *, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
    """A `name` command that appends its argv to tmp/name.calls (one line per call) and answers as told.
    A fake sbatch also keeps a copy of the script it was given (tmp/sbatch.script)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    log = tmp / f"{name}.calls"
    (tmp / f"{name}.out").write_text(stdout)
    (tmp / f"{name}.err").write_text(stderr)
    keep = f'for last; do :; done; cp "$last" {shlex.quote(str(tmp / "sbatch.script"))}\n' if name == "sbatch" else ""
    script = bindir / name
    script.write_text(f"#!/bin/sh\n{{ for a in \"$@\"; do printf '%s\\037' \"$a\"; done; echo; }} >> {shlex.quote(str(log))}\n"
                      f"{keep}cat {shlex.quote(str(tmp / (name + '.out')))}\n"
                      f"cat {shlex.quote(str(tmp / (name + '.err')))} >&2\nexit {code}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def calls(path: Path) -> list[list[str]]:
    return [line.split("\037")[:-1] for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "srt"
    (root / "configs").mkdir(parents=True)
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({
        "default_account": "acct", "default_partition": "batch", "srtctl_root": str(root),
        "logs_dir": str(tmp_path / "logs"), "python": "/usr/bin/python3",
        "model_paths": {"deepseek-r1": "/models/DeepSeek-R1"}, "containers": {"latest": "/c/latest.sqsh"}}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(cluster))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    return tmp_path


def slurm(site, monkeypatch, *, sbatch_out="4242\n", sbatch_err="", sbatch_code=0, release_code=0):
    return (fake_bin(site, monkeypatch, "sbatch", stdout=sbatch_out, stderr=sbatch_err, code=sbatch_code),
            fake_bin(site, monkeypatch, "scontrol", stderr="denied\n" if release_code else "", code=release_code),
            fake_bin(site, monkeypatch, "scancel"))


def leftovers(site: Path) -> list[str]:
    logs = site / "logs"
    return sorted(p.name for p in logs.iterdir() if p.name.startswith(".pending")) if logs.exists() else []


def test_apply_submits_held_then_releases(site, monkeypatch, capsys):
    sb, rel, can = slurm(site, monkeypatch)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml"), "--tags", "experiment,baseline,v2"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = list((site / "logs").iterdir())
    assert run_dir.name.startswith("4242_1P_1D_")
    assert out.splitlines() == ["Submitted batch job 4242", f"Logs: logs/{run_dir.name}/"]
    (args,) = calls(sb)
    assert args[:2] == ["--parsable", "--hold"] and "/.pending-" in args[-1]
    assert calls(rel) == [["release", "4242"]] and calls(can) == []
    assert sorted(p.name for p in run_dir.iterdir()) == ["job.sbatch", "job.yaml", "metadata.json", "resolved.json"]
    meta = json.loads((run_dir / "metadata.json").read_text())
    assert meta["job_id"] == "4242" and meta["tags"] == ["experiment", "baseline", "v2"]
    assert meta["executor"] == "slurm" and meta["topology"] == "1P_1D" and meta["nodes"] == 3
    assert meta["cluster_file"] == str(site / "srtslurm.yaml")
    # the script sbatch saw is the one in the run dir, and it points at that run dir
    script = (site / "sbatch.script").read_text()
    assert script == (run_dir / "job.sbatch").read_text()
    suffix = run_dir.name[len("4242"):]
    assert f'RUN_DIR={site}/logs/"${{SLURM_JOB_ID}}"{suffix}' in script
    assert leftovers(site) == []


def test_sbatch_error_is_explained_and_staging_removed(site, monkeypatch, capsys):
    sb, rel, _ = slurm(site, monkeypatch, sbatch_out="", sbatch_err=GRES, sbatch_code=1)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml")]) == 1
    err = capsys.readouterr().err
    assert "Invalid generic resource (gres) specification" in err
    assert f"fix: set `use_gpus_per_node_directive: false` in {site / 'srtslurm.yaml'}" in err
    assert len(calls(sb)) == 1 and calls(rel) == []
    assert leftovers(site) == [] and not any((site / "logs").iterdir())


def test_failed_release_cancels(site, monkeypatch, capsys):
    _, rel, can = slurm(site, monkeypatch, release_code=1)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml")]) == 1
    assert "could not release held job 4242" in capsys.readouterr().err
    assert calls(can) == [["4242"]]


@pytest.mark.parametrize("args, needle", [
    (["--tags", "ok,not ok"], "tag 'not ok'"),
    (["--setup-script", "missing.sh"], "setup script 'missing.sh' not found"),
    (["--setup-script", "../../etc/passwd"], "must be a file name inside"),
])
def test_bad_flags_stop_before_submitting(site, monkeypatch, capsys, args, needle):
    sb, _, _ = slurm(site, monkeypatch)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml"), *args]) == 2
    assert needle in capsys.readouterr().err
    assert calls(sb) == [] and not (site / "logs").exists()


def test_setup_script_recorded(site, monkeypatch):
    slurm(site, monkeypatch)
    (site / "srt" / "configs" / "custom-setup.sh").write_text("#!/bin/bash\ntrue\n")
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml"), "--setup-script", "custom-setup.sh"]) == 0
    (run_dir,) = list((site / "logs").iterdir())
    assert json.loads((run_dir / "metadata.json").read_text())["setup_script"] == "custom-setup.sh"


def test_config_error_exits_2_without_submitting(site, monkeypatch, capsys):
    sb, _, _ = slurm(site, monkeypatch)
    bad = site / "bad.yaml"
    bad.write_text((ROOT / "configs" / "my-job.yaml").read_text().replace("backend:", "backendd:"))
    assert main(["apply", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "unknown key 'backendd'" in err and "did you mean 'backend'?" in err
    assert calls(sb) == []


def test_apply_needs_a_file(site, capsys):
    assert main(["apply"]) == 2
    assert "apply needs -f FILE" in capsys.readouterr().err


def test_resume_needs_a_run_dir(site, capsys):
    assert main(["apply", "--resume", str(site)]) == 2
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("force", [False, True])
def test_resume_resubmits_into_the_same_run_dir(site, monkeypatch, capsys, force):
    slurm(site, monkeypatch)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml")]) == 0
    (run_dir,) = list((site / "logs").iterdir())
    sb, _, _ = slurm(site, monkeypatch, sbatch_out="4300\n")
    (site / "sbatch.calls").unlink()
    assert main(["apply", "--resume", str(run_dir), *(["--force"] if force else [])]) == 0
    (args,) = calls(sb)
    assert "--hold" not in args and args[-1] == str(run_dir / "job.resume.sbatch")
    assert ("--export=ALL,SRT_FORCE_RESUME=1" in args) == force
    script = (run_dir / "job.resume.sbatch").read_text()
    assert f"RUN_DIR={run_dir}\n" in script and f"--output={run_dir}/slurm-%j.out" in script
    assert capsys.readouterr().out.splitlines()[-2:] == ["Submitted batch job 4300", f"Logs: logs/{run_dir.name}/"]


def _submitted_run(site, monkeypatch) -> Path:
    slurm(site, monkeypatch)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml")]) == 0
    (run_dir,) = list((site / "logs").iterdir())
    return run_dir


def _variant(site, **changes) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "my-job.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for k in parents:
            node = node.setdefault(k, {})
        node[last] = value
    path = site / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_resume_with_a_different_deployment_is_refused_naming_the_difference(site, monkeypatch, capsys):
    run_dir = _submitted_run(site, monkeypatch)
    before = (run_dir / "resolved.json").read_text()
    sb, _, _ = slurm(site, monkeypatch, sbatch_out="4300\n")
    (site / "sbatch.calls").unlink()
    other = _variant(site, benchmark__isl=4321)
    assert main(["apply", "--resume", str(run_dir), "-f", str(other)]) == 2
    err = capsys.readouterr().err
    assert "benchmark.isl" in err and "4321" in err and "--force" in err and str(other) in err
    assert calls(sb) == [] and (run_dir / "resolved.json").read_text() == before
    # --force takes the new file
    assert main(["apply", "--resume", str(run_dir), "-f", str(other), "--force"]) == 0
    (args,) = calls(sb)
    assert "--export=ALL,SRT_FORCE_RESUME=1" in args
    assert json.loads((run_dir / "resolved.json").read_text())["job"]["benchmark"]["isl"] == 4321


def test_resume_with_new_benchmark_points_takes_the_file(site, monkeypatch, capsys):
    run_dir = _submitted_run(site, monkeypatch)
    old = json.loads((run_dir / "resolved.json").read_text())["job"]["benchmark"]
    sb, _, _ = slurm(site, monkeypatch, sbatch_out="4300\n")
    (site / "sbatch.calls").unlink()
    points = sorted(set(old.get("concurrencies") or [1]) | {777})
    assert main(["apply", "--resume", str(run_dir), "-f", str(_variant(site, benchmark__concurrencies=points))]) == 0
    assert "benchmark.concurrencies" in capsys.readouterr().err
    (args,) = calls(sb)
    assert "--export=ALL,SRT_FORCE_RESUME=1" in args  # the ledger accepts the new points' config
    assert json.loads((run_dir / "resolved.json").read_text())["job"]["benchmark"]["concurrencies"] == points


def test_resume_with_the_same_file_resumes_unchanged(site, monkeypatch):
    run_dir = _submitted_run(site, monkeypatch)
    sb, _, _ = slurm(site, monkeypatch, sbatch_out="4300\n")
    (site / "sbatch.calls").unlink()
    assert main(["apply", "--resume", str(run_dir), "-f", str(ROOT / "configs" / "my-job.yaml")]) == 0
    (args,) = calls(sb)
    assert "--export=ALL,SRT_FORCE_RESUME=1" not in args


@pytest.mark.parametrize("args,needle", [
    (["--tags", "a"], "--tags cannot be combined with --resume"),
    (["--setup-script", "x.sh"], "--setup-script cannot be combined with --resume"),
])
def test_flags_a_resume_cannot_honour_are_errors(site, monkeypatch, capsys, args, needle):
    run_dir = _submitted_run(site, monkeypatch)
    assert main(["apply", "--resume", str(run_dir), *args]) == 2
    assert needle in capsys.readouterr().err


def test_force_without_resume_is_an_error(site, monkeypatch, capsys):
    slurm(site, monkeypatch)
    assert main(["apply", "-f", str(ROOT / "configs" / "my-job.yaml"), "--force"]) == 2
    assert "--force only applies to --resume" in capsys.readouterr().err
