"""`srtctl dry-run`: every file apply would produce, written to dry-runs/, nothing submitted, no secrets."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main
from srt_agent.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
BASH = shutil.which("bash")
SECRET = "hf_DoNotLeakThis0123456789"


@pytest.fixture
def site(tmp_path, monkeypatch):
    root = tmp_path / "srt"
    (root / "configs").mkdir(parents=True)
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({
        "default_account": "acct", "default_partition": "batch", "srtctl_root": str(root),
        "logs_dir": str(tmp_path / "logs"), "python": "/usr/bin/python3",
        "model_paths": {"deepseek-r1": "/models/DeepSeek-R1", "llama-70b": "/models/Llama-3-70B"},
        "containers": {"latest": "/c/latest.sqsh", "stable": "/c/stable.sqsh"}}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(cluster))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    # an sbatch that must never run
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("sbatch", "srun", "scontrol"):
        (bindir / name).write_text(f"#!/bin/sh\ntouch {tmp_path}/{name}-was-called\nexit 1\n")
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def dry_run(site, job, *extra) -> Path:
    assert main(["dry-run", "-f", str(job), "--quiet", *extra]) == 0
    (out,) = list((site / "dry-runs").iterdir())
    return out


def files_in(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): p.read_text() for p in directory.rglob("*") if p.is_file()}


def test_seed_dry_run_writes_everything(site, capsys):
    out = dry_run(site, ROOT / "configs" / "my-job.yaml")
    assert capsys.readouterr().out.strip() == f"dry-runs/{out.name}"
    files = files_in(out)
    plan = Plan.model_validate_json(files["plan.json"])
    assert {"job.sbatch", "job.yaml", "resolved.json", "plan.json", "commands.txt", "nginx.conf"} <= set(files)
    assert {f"launch/{p.name}.sh" for p in plan.processes} == {f for f in files if f.startswith("launch/")}
    assert len(plan.frontends) == 10 and plan.endpoint.kind == "nginx"
    for p in plan.processes:
        assert p.name in files["commands.txt"]
    assert "upstream" in files["nginx.conf"]
    assert not list(site.glob("*-was-called")) and not (site / "logs").exists()
    assert not [p for p in (site / "dry-runs").iterdir() if p.name.endswith(".partial")]


@pytest.mark.skipif(not BASH, reason="needs bash")
def test_every_generated_script_parses(site):
    out = dry_run(site, ROOT / "configs" / "my-job.yaml")
    for path in [out / "job.sbatch", *sorted((out / "launch").iterdir())]:
        done = subprocess.run([BASH, "-n", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, (path.name, done.stderr)


def test_summary_printed_without_quiet(site, capsys):
    assert main(["dry-run", "-f", str(ROOT / "configs" / "my-job.yaml")]) == 0
    out = capsys.readouterr().out
    assert "Dry run" in out and "my-benchmark" in out and "nothing submitted" in out
    assert "decode-0" in out and "nginx" in out


def test_two_dry_runs_in_one_second_do_not_clash(site):
    for _ in range(3):
        assert main(["dry-run", "-f", str(ROOT / "configs" / "agg-example.yaml"), "--quiet"]) == 0
    names = sorted(p.name for p in (site / "dry-runs").iterdir())
    assert len(names) == 3 and len(set(names)) == 3


def test_router_job_has_no_nginx_conf(site):
    assert main(["dry-run", "-f", str(ROOT / "configs" / "agg-example.yaml"), "--quiet"]) == 0
    (out,) = list((site / "dry-runs").iterdir())
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    assert not (out / "nginx.conf").exists() and plan.endpoint.kind == "router"


def test_local_dry_run_plans_host_processes(site):
    assert main(["dry-run", "-f", str(ROOT / "configs" / "my-job.yaml"), "--quiet", "--local"]) == 0
    (out,) = list((site / "dry-runs").iterdir())
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    assert plan.container_image is None and not any(p.container for p in plan.processes)


def test_secrets_never_reach_dry_run_output(site, capsys):
    data = yaml.safe_load((ROOT / "configs" / "my-job.yaml").read_text())
    data["backend"]["prefill_environment"]["HF_TOKEN"] = SECRET
    data["backend"]["decode_environment"]["WANDB_API_KEY"] = SECRET + "x"
    job = site / "job.yaml"
    job.write_text(yaml.safe_dump(data))
    assert main(["dry-run", "-f", str(job)]) == 0
    assert SECRET not in capsys.readouterr().out
    (out,) = list((site / "dry-runs").iterdir())
    files = files_in(out)
    assert not [name for name, text in files.items() if SECRET in text]
    plan = json.loads(files["plan.json"])
    assert plan["processes"][2]["env"]["HF_TOKEN"] == "***"
    assert 'export HF_TOKEN="${HF_TOKEN}"' in files["launch/prefill-0.sh"]
    assert "export HF_TOKEN='***'" in files["commands.txt"]


def test_config_error_writes_nothing(site, capsys):
    bad = site / "bad.yaml"
    bad.write_text((ROOT / "configs" / "my-job.yaml").read_text().replace("tensor-parallel-size: 4",
                                                                         "tensor-parallel-size: 2"))
    assert main(["dry-run", "-f", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "tensor parallel size 2 does not match the 4 GPUs each prefill worker gets" in err
    assert not (site / "dry-runs").exists()


def test_missing_file(site, capsys):
    assert main(["dry-run", "-f", str(site / "nope.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err
