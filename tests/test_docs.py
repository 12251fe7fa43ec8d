"""docs/configuration.md cannot drift from the config models: its key tables are generated
(`python -m srt_agent.docgen`) and checked here against the models' JSON schema; key names the
docs mention in prose must exist."""

import re
from pathlib import Path

import pytest

from srt_agent import docgen
from srt_agent.cluster_config import ClusterConfig
from srt_agent.job_config import JobConfig

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
MODELS = {"cluster": ClusterConfig, "job": JobConfig}
MAPS = {"model_paths", "containers", "prefill_environment", "decode_environment", "aggregated_environment",
        "prefill", "decode", "aggregated"}  # free-form keys below these


def schema_keys(model) -> set[str]:
    """Every key path, derived independently of docgen from the model's JSON schema."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})

    def resolve(node):
        if "$ref" in node:
            return resolve(defs[node["$ref"].split("/")[-1]])
        for alt in node.get("anyOf", []):
            r = resolve(alt)
            if r.get("type") == "object" and "properties" in r:
                return r
        return node

    out: set[str] = set()

    def walk(node, prefix):
        for name, sub in node.get("properties", {}).items():
            out.add(prefix + name)
            sub = resolve(sub)
            if "properties" in sub:
                walk(sub, f"{prefix}{name}.")

    walk(resolve(schema), "")
    return out


def documented(kind: str) -> list[str]:
    text = DOC.read_text()
    block = text[text.index(docgen.begin(kind)):text.index(docgen.end(kind))]
    return re.findall(r"^\| `([^`]+)` \|", block, re.MULTILINE)


def test_generated_tables_are_up_to_date():
    text = DOC.read_text()
    assert docgen.regenerate(text) == text, "docs/configuration.md is stale: run python -m srt_agent.docgen"


@pytest.mark.parametrize("kind", ["cluster", "job"])
def test_every_key_documented_and_nothing_else(kind):
    keys = documented(kind)
    assert len(keys) == len(set(keys))
    expected = schema_keys(MODELS[kind])
    assert set(keys) - expected == set(), "documented keys that do not exist"
    assert expected - set(keys) == set(), "keys missing from docs/configuration.md"


@pytest.mark.parametrize("kind", ["cluster", "job"])
def test_every_field_has_a_description(kind):
    missing = [key for _, key, _, field in docgen.walk(MODELS[kind]) if not (field.description or "").strip()]
    assert missing == []


def test_defaults_in_the_tables_match_the_models():
    text = DOC.read_text()
    row = {m.group(1): m.group(3) for m in re.finditer(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| .* \|$", text, re.MULTILINE)}
    assert row["gpus_per_node"] == "`4`" and row["backend.num_additional_frontends"] == "`9`"
    assert row["benchmark.type"] == '`"manual"`' and row["name"] == "**required**"
    assert row["cloud.bucket"] == "**required**" and row["use_segment_sbatch_directive"] == "`true`"


def test_docgen_check_mode(tmp_path, capsys):
    stale = tmp_path / "configuration.md"
    stale.write_text(DOC.read_text().replace("| `gpus_per_node` |", "| `gpus_per_nodes` |"))
    assert docgen.main(["--check", "--file", str(stale)]) == 1
    assert docgen.main(["--file", str(stale)]) == 0 and docgen.main(["--check", "--file", str(stale)]) == 0
    assert stale.read_text() == DOC.read_text()
    assert docgen.main(["--check"]) == 0


# ---- key names mentioned in prose ------------------------------------------------------------

JOB_SECTIONS = tuple(JobConfig.model_fields)
LEAVES = {k.rsplit(".", 1)[-1] for kind in MODELS for k in schema_keys(MODELS[kind])}
FILE_EXTENSIONS = {"conf", "yaml", "yml", "json", "jsonl", "md", "sh", "py", "log", "out", "txt"}  # slurm.conf
NOT_KEYS = {"mem_fraction_static", "max_payload"}  # an sglang flag and a NATS setting named in prose


def mentioned_paths(text: str) -> list[str]:
    """Backticked dotted job-file paths such as `backend.use_sglang_router` or `benchmark.type: manual`."""
    out = []
    for token in re.findall(r"`([^`\n]+)`", text):
        path = token.split(":", 1)[0].strip()
        if re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", path) and path.split(".")[0] in JOB_SECTIONS \
                and path.rsplit(".", 1)[1] not in FILE_EXTENSIONS:
            out.append(path)
    return out


def known_job_path(path: str, keys: set[str]) -> bool:
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        prefix = ".".join(parts[:i])
        if prefix not in keys:
            return False
        if parts[i - 1] in MAPS:
            return True  # anything below a free-form mapping
    return True


DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_dotted_job_keys_in_docs_exist(doc):
    keys = schema_keys(JobConfig)
    bad = [p for p in mentioned_paths(doc.read_text()) if not known_job_path(p, keys)]
    if doc.name == "migrating.md":  # it names the srt-slurm (v1) keys too: those must be in the converter's table
        from srt_agent.incumbent.convert import _has_children
        from srt_agent.incumbent.mapping import lookup

        bad = [p for p in bad if lookup(tuple(p.split("."))) is None and not _has_children(tuple(p.split(".")))]
    assert bad == [], f"{doc.name} mentions job keys that do not exist"


def test_snake_case_names_in_configuration_md_exist():
    prose = DOC.read_text()
    for kind in MODELS:
        prose = prose[:prose.index(docgen.begin(kind))] + prose[prose.index(docgen.end(kind)):]
    names = {t.split(":", 1)[0].strip() for t in re.findall(r"`([^`\n]+)`", prose)}
    assert {"enable_multiple_frontends", "use_sglang_router", "prefill_environment"} <= names  # not vacuous
    unknown = sorted(n for n in names if re.fullmatch(r"[a-z]+(_[a-z]+)+", n) and n not in LEAVES | NOT_KEYS)
    assert unknown == []
