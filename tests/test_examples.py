"""Every example validates: each configs/*.yaml dry-runs against a test cluster file, and every
```yaml block in docs/*.md and README.md validates as a job file, a cluster file, or a fragment.

How a doc block is read:
- keys of the cluster file only                      -> validated as srtslurm.yaml;
- `name`/`model`/`resources` present                 -> a whole job file, resolved (aliases, tp vs GPUs...);
- other job-file top-level keys only                 -> merged into a small valid job and resolved;
- a first line `# fragment: SECTION` without SECTION  -> the block is the inside of SECTION;
- a first line `# not-config`                        -> skipped (say why after it).
"""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

from launcher.cli import main
from srt_agent.cluster_config import ClusterConfig
from srt_agent.job_config import JobConfig
from srt_agent.plan import Plan
from srt_agent.resolved import load_job_text
from srt_agent.validation import validate_document
from srt_agent.yaml_source import parse_yaml

ROOT = Path(__file__).resolve().parents[1]
# every alias the examples use, on a test cluster
MODEL_ALIASES = {"deepseek-r1": "/models/DeepSeek-R1", "deepseek-r1-fp4": "/models/deepseek-r1-fp4",
                 "llama-70b": "/models/Llama-3-70B", "sim-model": "/models/sim-model"}
CONTAINER_ALIASES = {"latest": "/containers/latest.sqsh", "stable": "/containers/stable.sqsh"}
TEST_CLUSTER = ClusterConfig(default_account="test", default_partition="batch", model_paths=MODEL_ALIASES,
                             containers=CONTAINER_ALIASES)
HOST_CLUSTER = TEST_CLUSTER.model_copy(update={"container_runtime": "none", "executor": "local"})
CLUSTER_KEYS = set(ClusterConfig.model_fields)
JOB_KEYS = set(JobConfig.model_fields)
BASE_DISAGG = {"name": "fragment", "model": {"path": "deepseek-r1", "container": "latest"},
               "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1}}
BASE_AGG = {"name": "fragment", "model": {"path": "deepseek-r1", "container": "latest"},
            "resources": {"agg_nodes": 1, "agg_workers": 1}}


def load(text: str):
    return yaml.safe_load(text)


def is_cluster_file(data) -> bool:
    return isinstance(data, dict) and bool(data) and set(data) <= CLUSTER_KEYS


# ---- configs/ ---------------------------------------------------------------------------------

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture
def site(tmp_path, monkeypatch):
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({**TEST_CLUSTER.model_dump(exclude_none=True), "srtctl_root": str(ROOT),
                                       "logs_dir": str(tmp_path / "logs")}))
    monkeypatch.setenv("SRTSLURM_CONFIG", str(cluster))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["srtctl"])
    return tmp_path


def test_there_are_examples():
    names = {p.name for p in CONFIGS}
    assert {"my-job.yaml", "srtslurm.example.yaml"} <= names and len(names) >= 3


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_example_dry_runs(path, site, capsys):
    data = load(path.read_text())
    if is_cluster_file(data):
        validate_document(ClusterConfig, parse_yaml(path.read_text(), str(path)))
        return
    local = [] if (data.get("model") or {}).get("container") else ["--local"]  # host-process examples
    code = main(["dry-run", "-f", str(path), "--quiet", "--output-dir", str(site / "out"), *local])
    assert code == 0, capsys.readouterr().err
    (out,) = list((site / "out").iterdir())
    # a sweep: one directory per member (listed in sweep.json), each like a single job's
    members = [out / m["name"] for m in json.loads((out / "sweep.json").read_text())["members"]] \
        if "sweep" in data else [out]
    for out in members:
        plan = Plan.model_validate_json((out / "plan.json").read_text())
        assert plan.workers and (out / "job.sbatch").is_file()
        assert {f"{p.name}.sh" for p in plan.processes} == {p.name for p in (out / "launch").iterdir()}


# ---- yaml blocks in the docs --------------------------------------------------------------------

BLOCK = re.compile(r"^(?P<indent>[ \t]*)```ya?ml[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.DOTALL | re.MULTILINE)


def doc_blocks():
    for doc in sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]:
        text = doc.read_text()
        for m in BLOCK.finditer(text):
            indent = m.group("indent")
            body = "".join(line.removeprefix(indent)
                           for line in m.group("body").splitlines(keepends=True))
            line = text[:m.start()].count("\n") + 1
            yield pytest.param(doc, line, body, id=f"{doc.name}:{line}")


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def uses_aggregated(fragment: dict) -> bool:
    backend = fragment.get("backend") or {}
    return "aggregated_environment" in backend or "aggregated" in (backend.get("sglang_config") or {})


def check_job(text: str, where: str):
    data = load(text)
    cluster = TEST_CLUSTER if (data.get("model") or {}).get("container") else HOST_CLUSTER
    if "sweep" in data:  # a sweep: every member resolved like a job file
        from srt_agent.sweep import check_allocation, expand

        doc = parse_yaml(text, where)
        sweep = expand(doc, doc.data, cluster)
        if sweep.mode == "allocation":
            check_allocation(sweep, doc)
        return
    load_job_text(text, cluster, where)


def test_docs_have_yaml_blocks():
    assert len(list(doc_blocks())) >= 5


@pytest.mark.parametrize("doc, line, body", list(doc_blocks()))
def test_doc_yaml_block_validates(doc, line, body):
    where = f"{doc.name}:{line}"
    first = body.lstrip().splitlines()[0] if body.strip() else ""
    if first.startswith("# not-config"):
        return
    data = load(body)
    assert isinstance(data, dict) and data, f"{where}: a yaml block must be a mapping (or start with # not-config)"
    marker = re.match(r"#\s*fragment:\s*([a-z_]+)", first)
    if marker and marker.group(1) not in data:
        data = {marker.group(1): data}
    if marker or not (set(data) & {"name", "model", "resources"}):
        if is_cluster_file(data) and not marker:
            validate_document(ClusterConfig, parse_yaml(body, where))
            return
        unknown = set(data) - JOB_KEYS - {"sweep"}
        assert not unknown, f"{where}: keys {sorted(unknown)} belong to neither srtslurm.yaml nor a job file"
        merged = deep_merge(BASE_AGG if uses_aggregated(data) else BASE_DISAGG, data)
        check_job(yaml.safe_dump(merged, sort_keys=False), where)
        return
    check_job(body, where)


def test_block_reader_catches_mistakes():
    """The block checks can fail: a misspelt key in a fragment, a whole job or a cluster file."""
    with pytest.raises(Exception, match="did you mean 'num_additional_frontends'"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "backend:\n  num_additional_frontend: 3\n")
    with pytest.raises(Exception, match="unknown key"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "# fragment: backend\nuse_sglang_routr: true\n")
    with pytest.raises(Exception, match="mutually exclusive"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "profiling:\n  type: torch\nbenchmark:\n  type: sa-bench\n"
                                                         "  isl: 1\n  osl: 1\n  concurrencies: [1]\n")
    with pytest.raises(Exception, match="neither srtslurm.yaml nor a job file"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "default_acount: x\n")
    with pytest.raises(Exception, match="gpus_per_node"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "gpus_per_node: 0\n")
    with pytest.raises(Exception, match="did you mean 'resources.decode_workers'"):
        test_doc_yaml_block_validates(Path("x.md"), 1, "sweep:\n  grid:\n    resources.decode_worker: [1, 2]\n")
