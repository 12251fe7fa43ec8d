"""`srtctl dry-run` start-up: pydantic's plugin scan (and the import of importlib.metadata it needs)
is skipped while the command's module is imported, and the switch reaches neither the rest of the
run nor a child process."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, sys
from launcher.cli import main
code = main(["dry-run", "-f", sys.argv[1], "--quiet"])
metadata = "importlib.metadata" in sys.modules
import pydantic.plugin._loader as loader
print(json.dumps({"code": code, "scanned": loader._plugins is not None, "metadata": metadata,
                  "env": os.environ.get("PYDANTIC_DISABLE_PLUGINS")}))
"""


def _probe(tmp_path, **env) -> dict:
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(f"default_account: a\ndefault_partition: p\nsrtctl_root: {json.dumps(str(tmp_path))}\n"
                       "model_paths: {deepseek-r1: /models/r1}\ncontainers: {latest: /c/latest.sqsh}\n")
    (tmp_path / "configs").mkdir(exist_ok=True)
    full = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    full.update(SRTSLURM_CONFIG=str(cluster), XDG_CACHE_HOME=str(tmp_path / "cache"), **env)
    done = subprocess.run([sys.executable, "-c", PROBE, str(ROOT / "configs" / "my-job.yaml")], cwd=tmp_path,
                          env=full, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dry_run_builds_its_models_without_the_plugin_scan(tmp_path):
    # nor the import of importlib.metadata that pydantic's plugin loader makes for it; the loader
    # imported after the run is pydantic's own (its _plugins cache, still empty)
    assert _probe(tmp_path) == {"code": 0, "scanned": False, "metadata": False, "env": None}


def test_a_users_own_plugin_setting_is_left_alone(tmp_path):
    assert _probe(tmp_path, PYDANTIC_DISABLE_PLUGINS="some-plugin") == {
        "code": 0, "scanned": True, "metadata": True, "env": "some-plugin"}
