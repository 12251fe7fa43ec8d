"""srt_agent.sweep: dotted paths against the job model, --set/--unset, grid x zip expansion,
readable member names, and every error before anything is written."""

import pytest
import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError
from srt_agent.sweep import apply_overrides, check_allocation, check_path, expand, short_keys
from srt_agent.yaml_source import parse_yaml

CLUSTER = ClusterConfig(model_paths={"m": "/models/m"}, container_runtime="none", executor="local")
BASE = """name: base
model: {path: m}
resources: {prefill_nodes: 1, decode_nodes: 1, prefill_workers: 1, decode_workers: 1, gpus_per_node: 4}
backend:
  engine: sim
  use_sglang_router: true
benchmark: {type: sa-bench, isl: 64, osl: 8, concurrencies: [1]}
"""


def sweep(text: str):
    doc = parse_yaml(BASE + text, "job.yaml")
    return expand(doc, doc.data, CLUSTER)


def test_grid_times_zip_with_readable_names_and_values_applied():
    s = sweep("sweep:\n  grid:\n    backend.sglang_config.decode.mem-fraction-static: [0.8, 0.85]\n"
              "    resources.decode_workers: [1, 2]\n  zip:\n    benchmark.isl: [64, 128]\n    benchmark.osl: [8, 4]\n")
    assert s.mode == "jobs" and len(s.members) == 8
    names = [m.name for m in s.members]
    assert names[0] == "base_mfs0.8_dw1_isl64_osl8" and names[-1] == "base_mfs0.85_dw2_isl128_osl4"
    assert len(set(names)) == 8
    m = s.members[-1]
    job = m.resolved.job
    assert job.name == m.name and job.resources.decode_workers == 2 and job.benchmark.isl == 128
    assert job.backend.sglang_config.decode["mem-fraction-static"] == 0.85
    assert "sweep" not in m.data and m.resolved.layouts["decode"].workers == 2


def test_colliding_labels_are_lengthened():
    labels = short_keys(["backend.sglang_config.decode.mem-fraction-static",
                         "backend.sglang_config.prefill.mem-fraction-static"])
    assert len(set(labels.values())) == 2 and all(v.endswith("mfs") for v in labels.values())


def test_bad_paths_name_file_line_and_did_you_mean():
    with pytest.raises(ConfigError) as e:
        sweep("sweep:\n  grid:\n    resources.decode_worker: [1, 2]\n    backend.sglang_confg.decode.x: [1]\n")
    text = str(e.value)
    assert "job.yaml:10: sweep.grid.resources.decode_worker" in text
    assert "did you mean 'resources.decode_workers'?" in text
    assert "job.yaml:11:" in text and "did you mean 'backend.sglang_config'?" in text
    with pytest.raises(ConfigError, match="goes below a plain value"):
        check_path("benchmark.isl.x", file="f", line=1, key="k")


@pytest.mark.parametrize("body, message", [
    ("  zip:\n    benchmark.isl: [1, 2]\n    benchmark.osl: [1]\n", "zip lists must have equal lengths"),
    ("  grid:\n    benchmark.isl: []\n", "empty list of values"),
    ("  grid:\n    name: [a, b]\n", "cannot vary the job name in grid"),
    ("  zip:\n    name.x: [a, b]\n", "cannot vary the job name through zip path 'name.x'"),
    ("  zip:\n    name: [a, a]\n", "must be unique"),
    ("  zip:\n    name: [a, b/c]\n", "letters, digits"),
    ("  mode: allocaton\n  grid:\n    benchmark.isl: [1]\n", "sweep.mode"),
    ("  grdi:\n    benchmark.isl: [1]\n", "did you mean 'grid'"),
    ("  mode: jobs\n", "needs grid or zip"),
])
def test_sweep_errors(body, message):
    with pytest.raises(ConfigError, match=message):
        sweep("sweep:\n" + body)


def test_zip_name_names_the_members_and_null_leaves_a_key_out():
    s = sweep("sweep:\n  zip:\n    name: [short, long]\n    benchmark.isl: [64, 128]\n"
              "    backend.sglang_config.decode.chunked-prefill-size: [null, 512]\n")
    assert [m.name for m in s.members] == ["short", "long"]
    assert [m.data["name"] for m in s.members] == ["short", "long"]
    assert "chunked-prefill-size" not in (s.members[0].data["backend"].get("sglang_config", {}).get("decode") or {})
    assert s.members[1].data["backend"]["sglang_config"]["decode"]["chunked-prefill-size"] == 512


def test_every_invalid_member_listed_with_its_values():
    with pytest.raises(ConfigError) as e:
        sweep("sweep:\n  grid:\n    resources.decode_workers: [1, 3]\n    benchmark.isl: [64, 0]\n")
    text = str(e.value)
    assert "3 of 4 sweep members are invalid" in text
    assert "member base_dw3_isl64 (resources.decode_workers=3, benchmark.isl=64)" in text
    assert "member base_dw1_isl0 (resources.decode_workers=1, benchmark.isl=0)" in text
    assert "job.yaml:11: benchmark.isl: Input should be greater than or equal to 1" in text  # the sweep's line
    assert "base_dw1_isl64 " not in text


def test_overrides_set_unset_and_their_errors():
    data = yaml.safe_load(BASE)
    out = apply_overrides(data, ["resources.decode_workers=2", "benchmark.concurrencies=[2, 4]",
                                 "backend.sglang_config.decode.mem-fraction-static=0.7"], ["benchmark.osl"])
    assert out["resources"]["decode_workers"] == 2 and out["benchmark"]["concurrencies"] == [2, 4]
    assert out["backend"]["sglang_config"]["decode"] == {"mem-fraction-static": 0.7}
    assert "osl" not in out["benchmark"] and data["benchmark"]["osl"] == 8  # the input is not changed
    with pytest.raises(ConfigError) as e:
        apply_overrides(data, ["resources.decode_wrkers=2", "nonsense", "benchmark.isl=["], ["slurm.account"])
    text = str(e.value)
    assert "--set: resources.decode_wrkers" in text and "did you mean 'resources.decode_workers'" in text
    assert "is not PATH=VALUE" in text and "not valid YAML" in text
    assert "--unset: slurm.account: not set in the job file" in text


def test_allocation_sized_for_the_largest_member_and_too_big_members_refused():
    s = sweep("sweep:\n  mode: allocation\n  grid:\n    resources.decode_nodes: [1, 2]\n")
    doc = parse_yaml(BASE, "job.yaml")
    assert check_allocation(s, doc) == 3
    s = sweep("sweep:\n  mode: allocation\n  nodes: 2\n  grid:\n    resources.decode_nodes: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"member base_dn2 needs 3 nodes, the allocation has 2"):
        check_allocation(s, doc)


def test_overrides_of_the_sweep_section():
    data = yaml.safe_load(BASE)
    out = apply_overrides(data, ["sweep.grid={resources.decode_workers: [1, 2]}", "sweep.mode=allocation"], [])
    assert out["sweep"] == {"grid": {"resources.decode_workers": [1, 2]}, "mode": "allocation"}
    with pytest.raises(ConfigError, match="not a key of the sweep section"):
        apply_overrides(data, ["sweep.grid.resources.decode_workers=[1]"], [])


def test_docs_table_lists_every_sweep_key():
    import re
    from pathlib import Path

    from srt_agent.sweep import SweepSection

    doc = (Path(__file__).resolve().parents[2] / "docs" / "sweeps.md").read_text()
    section = doc[doc.index("## The `sweep` section"):doc.index("## One-off variants")]
    assert re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE) == list(SweepSection.model_fields)
