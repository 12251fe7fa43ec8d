"""`model.container: none` on a pyxis cluster: srun steps without pyxis options, the workers with the
named host Python (model.python, else srtslurm.yaml `python`), validated at dry-run; the agent's
preflight runs that Python for real (the local launcher) and stops the run when it cannot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
import yaml

from launcher.dry_run import render_files
from launcher.prepare import prepare
from srt_agent.agent.host_check import check_host_python, needed_packages
from srt_agent.agent.launchers import LocalLauncher
from srt_agent.agent.status import StatusWriter
from srt_agent.errors import ConfigErrors, LaunchError
from srt_agent.plan import ProcessSpec
from srt_agent.srun import process_launch_command

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dry-run-srun" / "nocontainer-dynamo"
PY = "/opt/sglang-venv/bin/python"


def _files(tmp_path: Path, edit=None, cluster_edit=None) -> tuple[Path, Path]:
    job = yaml.safe_load((GOLDEN / "job.yaml").read_text())
    cluster = yaml.safe_load((GOLDEN / "srtslurm.yaml").read_text())
    if edit:
        edit(job)
    if cluster_edit:
        cluster_edit(cluster)
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump(cluster))
    return tmp_path / "job.yaml", tmp_path / "srtslurm.yaml"


def _prep(tmp_path: Path, edit=None, cluster_edit=None, local: bool = False):
    job, cluster = _files(tmp_path, edit, cluster_edit)
    return prepare(job, cluster_file=cluster, local=local)


def _pyxis(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith(("--container", "--no-container"))]


def test_no_container_steps_carry_no_pyxis_option_and_the_named_python(tmp_path):
    prep = _prep(tmp_path)
    plan = prep.plan
    assert plan.container_image is None and plan.container_mounts == []
    assert plan.model_path == "/models/host/tiny-llama"  # the host path itself, no /model mount
    for p in plan.processes:
        assert p.launch[0] == "srun" and not _pyxis(p.launch) and not p.container, p.name
        if p.kind in ("worker", "frontend"):
            assert p.python == PY and PY in p.command, p.name
    assert json.loads(prep.files["resolved.json"])["resolved"]["python"] == PY
    assert "container-" not in prep.files["job.sbatch"]


def test_the_same_job_in_a_container_gets_the_pyxis_options(tmp_path):
    """The contrast: what `none` takes away (the cluster's alias instead)."""
    def edit(job):
        job["model"]["container"] = "latest"
        del job["model"]["python"]
    plan = _prep(tmp_path, edit).plan
    worker = plan.by_kind("worker")[0]
    assert "--container-image=/containers/sglang+v0.5.5.sqsh" in worker.launch and worker.python == "python3"


def test_srun_builder_adds_pyxis_options_only_for_container_processes(tmp_path):
    plan = _prep(tmp_path).plan
    worker = plan.by_kind("worker")[0]
    as_container = plan.model_copy(update={"container_image": "/c.sqsh", "container_mounts": ["/a:/b"]})
    assert not _pyxis(process_launch_command(as_container, worker, "/x.sh", executor="slurm"))
    inside = worker.model_copy(update={"container": True})
    assert _pyxis(process_launch_command(as_container, inside, "/x.sh", executor="slurm"))[0] == \
        "--container-image=/c.sqsh"


def test_python_falls_back_to_the_cluster_file(tmp_path):
    plan = _prep(tmp_path, lambda j: j["model"].pop("python")).plan
    assert {p.python for p in plan.processes if p.kind == "worker"} == {"/usr/bin/python3"}


@pytest.mark.parametrize("edit, cluster_edit, message", [
    (lambda j: j["model"].update(python="venv/bin/python"), None, "absolute path of a Python interpreter"),
    (lambda j: j["model"].pop("python"), lambda c: c.pop("python"), "none is named"),
    (lambda j: j["model"].pop("python"), lambda c: c.update(python="python3"), "not an absolute path"),
    (lambda j: j["model"].update(container="latest"), None, "runs in a container"),
    (lambda j: j.update(extra_mount=["/data:/data"]), None, "extra_mount mounts directories into the container"),
    (lambda j: j.update(slurm={"srun_options": {"container-writable": None}}), None, "a pyxis container option"),
    (None, lambda c: c["containers"].update(none="/c/none.sqsh"), "defines a container alias 'none'"),
])
def test_dry_run_refuses_an_unusable_python(tmp_path, edit, cluster_edit, message):
    with pytest.raises(ConfigErrors) as err:
        _prep(tmp_path, edit, cluster_edit)
    assert message in str(err.value), str(err.value)


def test_custom_benchmark_script_exports_frontend_url_and_artifacts_dir(tmp_path):
    prep = _prep(tmp_path)
    script = render_files(prep)["custom-benchmark.sh"]
    url = prep.plan.endpoint.url
    run_dir = prep.plan.process("prefill-0").launch[-1].rsplit("/launch/", 1)[0]
    assert f"export SRT_FRONTEND_URL={url}\n" in script and f"export SRT_ENDPOINT_URL={url}\n" in script
    assert f"export AIPERF_ARTIFACT_DIR={run_dir}/results/aiperf\n" in script
    assert 'mkdir -p "$AIPERF_ARTIFACT_DIR"' in script


def test_benchmark_env_may_not_set_the_provided_names(tmp_path):
    def edit(job):
        job["benchmark"]["env"] = {"AIPERF_ARTIFACT_DIR": "/tmp/x"}
    with pytest.raises(ConfigErrors, match="set by srtctl itself"):
        _prep(tmp_path, edit)


def test_needed_packages():
    def proc(module, dynamo=None):
        return ProcessSpec(name="w", kind="worker", node="n", address="a", command=["p"], python="/p",
                           module=module, dynamo_version=dynamo)
    assert needed_packages(proc("dynamo.sglang")) == ["dynamo", "sglang"]
    assert needed_packages(proc("dynamo.sglang", "0.7.0")) == ["sglang"]  # srtctl installs Dynamo
    assert needed_packages(proc("sglang.launch_server")) == ["sglang"]
    assert needed_packages(proc("srt_agent.sim")) == []


class _Ctx:
    def __init__(self, prep, run_dir: Path):
        self.job, self.plan = prep.resolved.job, prep.plan
        self.launcher = LocalLauncher()
        self.status = StatusWriter(run_dir, job_id="1", name="t", executor="local")


def _python_with(tmp_path: Path, packages: list[str]) -> str:
    """A real interpreter (this one) that sees fake packages: a wrapper setting PYTHONPATH."""
    site = tmp_path / "site"
    for name in packages:
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text("")
    wrapper = tmp_path / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    wrapper.chmod(0o755)
    return str(wrapper)


def _preflight(tmp_path: Path, python: str, dynamo_install: bool = True):
    def edit(job):
        job["model"]["python"] = python
        job["backend"]["dynamo_install"] = dynamo_install
    prep = _prep(tmp_path, edit, local=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    ctx = _Ctx(prep, run_dir)
    anyio.run(check_host_python, ctx)
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_preflight_passes_a_python_with_sglang_and_records_it(tmp_path):
    python = _python_with(tmp_path, ["sglang"])
    events = _preflight(tmp_path, python)
    (ev,) = [e for e in events if e.get("event") == "host_python"]
    assert ev["python"] == python and ev["version"] == sys.version.split()[0] and ev["packages"] == ["sglang"]


def test_preflight_stops_a_python_without_sglang(tmp_path):
    python = _python_with(tmp_path, [])
    with pytest.raises(LaunchError, match=r"lacks sglang"):
        _preflight(tmp_path, python)


def test_preflight_wants_dynamo_when_srtctl_does_not_install_it(tmp_path):
    python = _python_with(tmp_path, ["sglang"])
    with pytest.raises(LaunchError, match=r"lacks dynamo"):
        _preflight(tmp_path, python, dynamo_install=False)


def test_preflight_stops_a_python_that_does_not_run(tmp_path):
    with pytest.raises(LaunchError, match=r"/nowhere/bin/python \(model.python; model.container: none\) does not run"):
        _preflight(tmp_path, "/nowhere/bin/python")
