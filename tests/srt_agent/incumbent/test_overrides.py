"""srt-slurm (v1) override files -> one job file with a sweep.zip, one member per variant."""

import copy

import pytest
import yaml

from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.incumbent.overrides import deep_merge
from srt_agent.yaml_source import parse_yaml

BASE = {
    "name": "r",
    "model": {"path": "m", "container": "c", "precision": "fp8"},
    "resources": {"gpu_type": "gb200", "prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1,
                  "decode_workers": 1, "gpus_per_node": 4},
    "frontend": {"type": "dynamo"},
    "backend": {"type": "sglang", "sglang_config": {"decode": {"mem-fraction-static": 0.8}}},
    "benchmark": {"type": "sa-bench", "isl": 1024, "osl": 1024, "concurrencies": [4, 8]},
}


def convert(variants: dict):
    text = yaml.safe_dump({"base": copy.deepcopy(BASE), **variants}, sort_keys=False)
    return convert_document(parse_yaml(text, "over.yaml")), text


def errors_of(exc):
    return exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value]


def test_deep_merge_follows_the_incumbents_rules():
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "d": None, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "e": 2}


def test_overrides_and_zip_overrides_become_zip_members_in_order():
    conv, text = convert({
        "override_lowmem": {"backend": {"sglang_config": {"decode": {"mem-fraction-static": 0.7}}}},
        "zip_override_conc": {"name": ["a", "b"], "benchmark": {"concurrencies": [[16], [32, 64]], "isl": [2048]}},
    })
    zipped = conv.data["sweep"]["zip"]
    assert zipped == {"name": ["lowmem", "a", "b"], "backend.sglang_config.decode.mem-fraction-static": [0.7, 0.8, 0.8],
                      "benchmark.isl": [1024, 2048, 2048],
                      "benchmark.concurrencies": [[4, 8], [16], [32, 64]]}
    # the job outside the sweep is the converted base; srt-slurm's keys are converted in every member
    assert conv.data["backend"]["engine"] == "sglang" and conv.data["benchmark"]["isl"] == 1024
    assert "override_lowmem" not in conv.data and "base" not in conv.data
    lines = text.splitlines()
    line = conv.lines[("sweep", "zip", "backend.sglang_config.decode.mem-fraction-static")]
    assert "mem-fraction-static: 0.7" in lines[line - 1]
    note = next(n for n in conv.notes if n.startswith("override file"))
    assert "1: override_lowmem = lowmem, 2: zip_override_conc (conc_0) = a, 3: zip_override_conc (conc_1) = b" in note


def test_keys_converted_differently_per_variant_are_zipped_in_srtctls_names():
    conv, _ = convert({"override_router": {"frontend": {"type": "sglang"}},
                       "override_dynamo": {"benchmark": {"concurrencies": [2]}}})
    assert conv.data["sweep"]["zip"] == {"name": ["router", "dynamo"], "backend.use_sglang_router": [True, False],
                                         "benchmark.concurrencies": [[4, 8], [2]]}


def test_a_single_override_is_the_merged_job():
    conv, _ = convert({"override_only": {"resources": {"decode_workers": 2}}})
    assert "sweep" not in conv.data and conv.data["resources"]["decode_workers"] == 2


def test_members_are_named_after_their_variants_and_lack_what_they_do_not_set():
    conv, _ = convert({
        "override_dpa": {"backend": {"sglang_config": {"decode": {"enable-dp-attention": True}}}},
        "override_short": {"benchmark": {"osl": None}, "backend": {"decode_environment": {"X": "1"}}},
        "zip_override_w": {"resources": {"decode_workers": [1, 2]}},
        "zip_override_named": {"name": ["n-1", "n 2"], "benchmark": {"isl": [64, 128]}},
        "override_dup": {"name": "n-1"},
    })
    zipped = conv.data["sweep"]["zip"]
    assert zipped["name"] == ["dpa", "short", "w_0", "w_1", "n-1", "n-2", "n-1-2"]
    assert zipped["backend.sglang_config.decode.enable-dp-attention"] == [True] + [None] * 6
    assert zipped["benchmark.osl"] == [1024, None, 1024, 1024, 1024, 1024, 1024]
    assert zipped["backend.decode_environment.X"] == [None, "1", None, None, None, None, None]
    note = next(n for n in conv.notes if n.startswith("override file"))
    assert "1: override_dpa = dpa" in note and "6: zip_override_named (named_1) = n-2" in note


@pytest.mark.parametrize("variants,words", [
    ({"zip_override_z": {"resources": {"decode_workers": [1, 2], "prefill_workers": [1, 2, 3]}}}, "one length"),
    ({"override_a": {"resources": {"decode_workers": 2}}, "extra": 1}, "every key is base"),
    ({}, "at least one"),
])
def test_what_a_sweep_cannot_express_is_refused_with_the_variant(variants, words):
    with pytest.raises(ConfigError) as exc:
        convert(variants)
    errors = errors_of(exc)
    assert any(words in e.message and e.file == "over.yaml" and e.line for e in errors), \
        [e.render() for e in errors]


def test_a_refused_key_in_a_variant_points_at_its_line():
    with pytest.raises(ConfigError) as exc:
        convert({"override_a": {"resources": {"decode_workers": 2}},
                 "override_b": {"backend": {"mooncake_kv_store": {"x": 1}}}})
    (err,) = errors_of(exc)
    assert err.key == "backend.mooncake_kv_store" and err.line and err.line > 10


def test_a_variant_without_base_is_refused():
    data = copy.deepcopy(BASE)
    data["override_a"] = {"resources": {"decode_workers": 2}}
    with pytest.raises(ConfigError) as exc:
        convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "r.yaml"))
    assert any("needs a base" in e.message and e.key == "override_a" for e in errors_of(exc))
