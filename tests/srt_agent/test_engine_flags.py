"""sglang_config keys checked at dry-run/apply time against the shipped option lists of the SGLang release
(and Dynamo's dynamo.sglang); the lists are generated from wheels by scripts/gen-engine-options."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.engine_flags import check, options, shipped_versions, version_from_container
from srt_agent.errors import ConfigErrors
from srt_agent.resolved import load_job_text

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ClusterConfig(default_account="a", model_paths={"m": "/models/m"},
                        containers={"v055": "/c/dynamo-sglang+v0.5.5.sqsh", "v054": "/c/lmsysorg+sglang+v0.5.4.sqsh",
                                    "plain": "/c/latest.sqsh"})


def job(flags: dict, *, container: str = "v055", router: bool = False, **backend) -> str:
    return yaml.safe_dump({
        "name": "j", "model": {"path": "m", "container": container},
        "resources": {"agg_nodes": 1, "agg_workers": 1, "gpus_per_node": 4},
        "backend": {"use_sglang_router": router, "sglang_config": {"aggregated": {"tensor-parallel-size": 4, **flags}},
                    **backend},
        "benchmark": {"type": "manual"}}, sort_keys=False)


@pytest.mark.parametrize("image,version", [
    ("/containers/dynamo-sglang+v0.5.5.sqsh", "0.5.5"), ("lmsysorg/sglang:v0.5.8-cu130", "0.5.8"),
    ("/c/sglang-0.5.4.post1.sqsh", "0.5.4.post1"), ("/c/latest.sqsh", None), (None, None)])
def test_version_from_the_container_name(image, version):
    assert version_from_container(image) == version


def test_shipped_lists():
    versions = shipped_versions()
    assert {"0.5.4", "0.5.5"} <= set(versions) and len(versions) >= 3
    for v in versions:
        opts = options("sglang", v)
        assert {"mem-fraction-static", "tensor-parallel-size", "disaggregation-mode", "kv-cache-dtype"} <= opts
        data = json.loads((ROOT / "srt_agent" / "engine_options" / f"sglang-{v}.json").read_text())
        assert data["source"]["wheel"].startswith(f"sglang-{v}-") and len(data["source"]["sha256"]) == 64
    assert {"migration-limit", "dyn-reasoning-parser"} <= options("dynamo-sglang", "0.7.0")


def test_typo_names_file_line_and_the_fix():
    text = job({"mem-fraction-statik": 0.8})
    with pytest.raises(ConfigErrors) as err:
        load_job_text(text, CLUSTER, path="job.yaml")
    msg = str(err.value)
    line = text.splitlines().index("      mem-fraction-statik: 0.8") + 1
    assert f"job.yaml:{line}: backend.sglang_config.aggregated.mem-fraction-statik" in msg
    assert "not an option of SGLang 0.5.5" in msg and "did you mean 'mem-fraction-static'?" in msg


def test_dynamo_extras_only_behind_dynamo():
    load_job_text(job({"migration-limit": 2}), CLUSTER)
    with pytest.raises(ConfigErrors, match="'migration-limit' is not an option of SGLang 0.5.5 "):
        load_job_text(job({"migration-limit": 2}, router=True), CLUSTER)


def test_sglang_version_key_beats_the_container_name():
    flag = next(iter(options("sglang", shipped_versions()[-1]) - options("sglang", "0.5.5")))
    with pytest.raises(ConfigErrors):
        load_job_text(job({flag: True}), CLUSTER)
    load_job_text(job({flag: True}, sglang_version=shipped_versions()[-1]), CLUSTER)


def test_unknown_version_warns_and_checks_nothing():
    r = load_job_text(job({"not-a-flag": 1}, container="plain"), CLUSTER)
    errors, warnings = check(r.job, r.container, "job.yaml", lambda *_: None)
    assert errors == [] and "SGLang version is unknown" in warnings[0]
    r = load_job_text(job({"not-a-flag": 1}, sglang_version="9.9.9"), CLUSTER)
    errors, warnings = check(r.job, r.container, "job.yaml", lambda *_: None)
    assert errors == [] and "no option list for SGLang 9.9.9" in warnings[0] and "gen-engine-options" in warnings[0]


def test_sim_jobs_keep_their_own_vocabulary():
    text = yaml.safe_dump({"name": "s", "model": {"path": "m", "container": "v055"},
                           "resources": {"agg_nodes": 1, "agg_workers": 1, "gpus_per_node": 4},
                           "backend": {"engine": "sim", "use_sglang_router": True,
                                       "sglang_config": {"aggregated": {"mem-fraction-static": 0.8,
                                                                        "tensor-parallel-size": 4}}},
                           "benchmark": {"type": "manual"}})
    r = load_job_text(text, CLUSTER)
    assert check(r.job, r.container, "x", lambda *_: None) == ([], [])


SERVER_ARGS = '''
import argparse
class ServerArgs:
    @staticmethod
    def add_cli_args(parser):
        parser.add_argument("--model-path", "--model", type=str)
        parser.add_argument("--mem-fraction-static", type=float)
        parser.add_argument(f"--{prefix}-dynamic")
'''
FIELDS = '''
from typing import Annotated as A, Optional
class Memory(msgspec.Struct):
    chunked_prefill_size: A[Optional[int], "help"] = None
    internal_only: A[int, Arg(no_cli=True)] = 0
    tp_size: A[int, Arg(help="tp", cli_name="--tensor-parallel-size", aliases=["--tp-size"])] = 1
    plain: int = 3
'''
DYNAMO_ARGS = '''
DYNAMO_ARGS = {"endpoint": {"flags": ["--endpoint"], "type": str}, "x": {"flags": ["--dyn-x"]}}
def parse(parser):
    parser.add_argument("--version", action="version")
'''


def wheel(path: Path, files: dict[str, str]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    path.write_bytes(buf.getvalue())
    return path


def test_generator_reads_argparse_and_declared_fields_without_importing(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    # the sources would fail on import (undefined names): they are parsed, never run
    wheel(wheels / "sglang-1.2.3-py3-none-any.whl", {"sglang/srt/server_args.py": SERVER_ARGS,
                                                      "sglang/srt/arg_groups/fields/memory.py": FIELDS})
    wheel(wheels / "ai_dynamo-4.5.6-py3-none-any.whl", {"dynamo/sglang/args.py": DYNAMO_ARGS})
    out = tmp_path / "out"
    for kind, version in (("sglang", "1.2.3"), ("dynamo", "4.5.6")):
        res = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-engine-options"), kind, version,
                              "--wheel-dir", str(wheels), "--out", str(out)], capture_output=True, text=True,
                             timeout=60, check=False)
        assert res.returncode == 0, res.stderr
    data = json.loads((out / "sglang-1.2.3.json").read_text())
    assert data["options"] == ["chunked-prefill-size", "mem-fraction-static", "model", "model-path",
                               "tensor-parallel-size", "tp-size"]
    assert json.loads((out / "dynamo-sglang-4.5.6.json").read_text())["options"] == ["dyn-x", "endpoint", "version"]
