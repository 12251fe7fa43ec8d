"""srt-slurm's direct-host recipes (`model.container: direct-host`, rendered by `srtctl apply --bash`
to run on the host's own Python): converted to `model.container: none`, a `$NAME` model path read
from the environment, and dry-run without a single pyxis option."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import yaml

from launcher.cli import main
from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.resolved import resolve_job
from srt_agent.yaml_source import parse_yaml

RECIPE = {
    "name": "host-3p2d",
    "model": {"path": "/data/models/tiny", "container": "direct-host", "precision": "fp8"},
    "resources": {"gpu_type": "h100", "gpus_per_node": 8, "prefill_nodes": 1, "decode_nodes": 0,
                  "prefill_workers": 3, "decode_workers": 2, "gpus_per_prefill": 1, "gpus_per_decode": 1},
    "dynamo": {"install": False},
    "frontend": {"type": "dynamo", "enable_multiple_frontends": False, "args": {"router-mode": "kv"}},
    "backend": {"type": "sglang", "sglang_config": {
        "prefill": {"served-model-name": "org/tiny", "tensor-parallel-size": 1, "page-size": 16},
        "decode": {"served-model-name": "org/tiny", "tensor-parallel-size": 1, "page-size": 16}}},
    "benchmark": {"type": "custom",
                  "command": 'bench --url "$SRT_FRONTEND_URL" --output-artifact-dir "$AIPERF_ARTIFACT_DIR"'},
}


def convert(data):
    return convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"))


def cluster(**kw) -> ClusterConfig:
    return ClusterConfig.model_validate({"default_account": "a", "containers": {"c": "/c.sqsh"}, **kw})


def test_direct_host_becomes_no_container_and_resolves_to_host_processes(monkeypatch):
    monkeypatch.delenv("SRTCTL_PYTHON", raising=False)
    conv = convert(RECIPE)
    assert conv.data["model"]["container"] == "none" and "python" not in conv.data["model"]
    assert any(n.startswith("model.container (line ") and "none" in n for n in conv.notes), conv.notes
    resolved = resolve_job(conv.document(), cluster(python="/opt/venv/bin/python"))
    assert resolved.container is None and resolved.python == "/opt/venv/bin/python"
    with pytest.raises(ConfigErrors, match="model.container: none runs the workers with the host's own Python"):
        resolve_job(conv.document(), cluster())  # no Python named anywhere


def test_srtctl_python_names_the_host_python(monkeypatch):
    monkeypatch.setenv("SRTCTL_PYTHON", "/opt/sgl/bin/python")
    conv = convert(RECIPE)
    assert conv.data["model"]["python"] == "/opt/sgl/bin/python"
    assert resolve_job(conv.document(), cluster(python="/usr/bin/python3")).python == "/opt/sgl/bin/python"


def test_other_containers_are_passed_on_as_they_are():
    for value in ("lmsysorg/sglang:v0.5.8", "c", "/images/x.sqsh"):
        data = copy.deepcopy(RECIPE)
        data["model"]["container"] = value
        assert convert(data).data["model"]["container"] == value


@pytest.mark.parametrize("written", ["$TINY_MODEL", "${TINY_MODEL}", "${TINY_MODEL}/snapshot"])
def test_model_path_from_the_environment(monkeypatch, written):
    monkeypatch.setenv("TINY_MODEL", "/data/m")
    data = copy.deepcopy(RECIPE)
    data["model"]["path"] = written
    conv = convert(data)
    assert conv.data["model"]["path"] == written.replace("${TINY_MODEL}", "/data/m").replace("$TINY_MODEL", "/data/m")
    assert any("from the environment" in n for n in conv.notes)


@pytest.mark.parametrize("written, named", [("$TINY_UNSET", "TINY_UNSET"), ("/m/$", "NAME")])
def test_model_path_variable_unset_or_malformed_is_refused_with_its_line(monkeypatch, written, named):
    monkeypatch.delenv("TINY_UNSET", raising=False)
    data = copy.deepcopy(RECIPE)
    data["model"]["path"] = written
    with pytest.raises(ConfigErrors) as exc:
        convert(data)
    (err,) = exc.value.errors
    assert err.key == "model.path" and err.line == 3 and f"export {named}=" in err.render()


def test_a_direct_host_recipe_dry_runs_without_pyxis(tmp_path, monkeypatch):
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "default_account": "a", "srtctl_root": str(tmp_path), "logs_dir": str(tmp_path / "logs"),
        "python": "/opt/venv/bin/python", "containers": {"c": "/c.sqsh"}}))
    recipe = copy.deepcopy(RECIPE)
    recipe["model"]["path"] = "$TINY_MODEL"
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(tmp_path / "srtslurm.yaml"))
    monkeypatch.setenv("TINY_MODEL", "/data/models/tiny")
    monkeypatch.delenv("SRTCTL_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    assert main(["dry-run", "-f", "recipe.yaml", "--quiet"]) == 0
    (out,) = (tmp_path / "dry-runs").iterdir()
    converted = yaml.safe_load((out / "job.converted.yaml").read_text())
    assert converted["model"] == {"path": "/data/models/tiny", "container": "none", "precision": "fp8",
                                  "served_model_name": "org/tiny"}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["container_image"] is None
    for p in plan["processes"]:
        pyxis = [a for a in p["launch"] if a.startswith(("--container", "--no-container"))]
        assert p["launch"][0] == "srun" and not pyxis, p["name"]
    workers = [p for p in plan["processes"] if p["kind"] == "worker"]
    assert len(workers) == 5 and {p["python"] for p in workers} == {"/opt/venv/bin/python"}
    assert all("/data/models/tiny" in p["command"] for p in workers)
    script = (out / "custom-benchmark.sh").read_text()
    ep = plan["endpoint"]
    assert f"export SRT_FRONTEND_URL=http://{ep['address']}:{ep['port']}\n" in script
    assert "export AIPERF_ARTIFACT_DIR=" in script and "/results/aiperf" in script
