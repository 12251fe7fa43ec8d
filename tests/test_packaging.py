"""srt-slurm as a real Python package: the wheel carries templates/ (kept at the top of the repository),
and `srtctl dry-run` and the local demo job run from a fresh virtual environment holding only the wheel.

The wheel is built offline (hatchling from the test extra, --no-build-isolation). The fresh environment gets
the wheel alone; its dependencies come from the project venv's site-packages through a plain path entry
(which, unlike a site directory, does not process that venv's editable-install .pth file), so nothing of
the checkout is importable from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run(cmd, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    assert res.returncode == 0, f"{cmd}: exit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("wheel")
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(dist), str(ROOT)], cwd=tmp)
    (wheel,) = dist.glob("srt_slurm-*.whl")
    env_dir = tmp / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=tmp)
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    (site / "srt_test_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SRTCTL_ROOT", "SRTSLURM_CONFIG",
                                                             "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    return {"wheel": wheel, "python": py, "bin": env_dir / "bin", "site": site, "env": env, "tmp": tmp}


def test_wheel_contents_and_import_location(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    templates = {p.name for p in (ROOT / "templates").iterdir() if p.suffix == ".j2"}
    assert templates and {f"srt_agent/templates/{t}" for t in templates} <= names
    assert "srt_agent/engine_options/sglang-0.5.5.json" in names
    assert "launcher/binaries.json" in names and not [n for n in names if "__pycache__" in n]
    where = run([str(installed["python"]), "-c",
                 "import srt_agent, launcher, srt_agent.templating as t; "
                 "print(srt_agent.__file__); print(launcher.__file__); print(t.TEMPLATES_DIR)"],
                cwd=installed["tmp"], env=installed["env"]).stdout.split()
    site = installed["site"]
    assert where == [str(site / "srt_agent" / "__init__.py"), str(site / "launcher" / "__init__.py"),
                     str(site / "srt_agent" / "templates")], "imported from outside the installed wheel"


def test_dry_run_and_local_demo_from_the_installed_wheel(installed, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = dict(installed["env"])
    env["SRTSLURM_CONFIG"] = str(work / "srtslurm.yaml")
    py = str(installed["python"])
    run([py, "-c", "import sys; from srt_agent.sim.model_dir import write_model_dir; write_model_dir(sys.argv[1])",
         str(work / "model")], env=env, cwd=work)
    (work / "srtslurm.yaml").write_text(yaml.safe_dump({
        "executor": "local", "container_runtime": "none", "node_addresses": "loopback",
        "model_paths": {"sim-model": str(work / "model")}, "logs_dir": str(work / "logs")}))
    job = work / "demo-sim.yaml"
    demo = yaml.safe_load((ROOT / "configs" / "demo-sim.yaml").read_text())
    demo["benchmark"].update(concurrencies=[8], prompt_multiplier=2)  # the demo, a shorter sweep
    job.write_text(yaml.safe_dump(demo, sort_keys=False))
    srtctl = str(installed["bin"] / "srtctl")

    res = run([srtctl, "dry-run", "-f", str(job)], env=env, cwd=work)
    assert "Traceback" not in res.stderr and "nothing submitted" in res.stdout
    (out,) = (work / "dry-runs").iterdir()
    plan = json.loads((out / "plan.json").read_text())
    assert {f"launch/{p['name']}.sh" for p in plan["processes"]} == {
        str(p.relative_to(out)) for p in (out / "launch").iterdir()}
    assert "#SBATCH" in (out / "job.sbatch").read_text()
    assert f"export SRTCTL_ROOT={work}" in (out / "job.sbatch").read_text(), "no checkout: the current directory"

    res = run([srtctl, "apply", "--local", "-f", str(job)], env=env, cwd=work, timeout=300)
    (run_dir,) = (work / "logs").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "succeeded", (status.get("failure"), res.stdout[-2000:])
    assert status["benchmark"]["points_done"] == 1
    for p in json.loads((run_dir / "plan.json").read_text())["processes"]:
        if p["kind"] == "worker":
            assert p["command"][0] == py and p["command"][1:3] == ["-m", "srt_agent.sim"]
    res = run([srtctl, "status", str(run_dir)], env=env, cwd=work)
    assert "succeeded" in res.stdout
