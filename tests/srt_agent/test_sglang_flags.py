"""sglang_config -> flags: kebab-case, true -> bare flag, false/None dropped, lists -> repeated values."""

from srt_agent.sglang_flags import sglang_flags


def test_scalars_and_kebab_case():
    assert sglang_flags({"mem_fraction_static": 0.84, "kv-cache-dtype": "fp8_e4m3", "--chunked-prefill-size": 4096}) == [
        "--mem-fraction-static", "0.84", "--kv-cache-dtype", "fp8_e4m3", "--chunked-prefill-size", "4096"]


def test_booleans():
    assert sglang_flags({"enable-dp-attention": True, "disable-radix-cache": False, "x": None}) == [
        "--enable-dp-attention"]


def test_lists_repeat_values_after_one_flag():
    assert sglang_flags({"cuda-graph-bs": [1, 2, 4, 8]}) == ["--cuda-graph-bs", "1", "2", "4", "8"]
    assert sglang_flags({"empty": []}) == ["--empty"]


def test_nested_values_become_compact_json():
    assert sglang_flags({"json-model-override-args": {"a": [1, True]}}) == [
        "--json-model-override-args", '{"a":[1,true]}']
    assert sglang_flags({"mix": [True, {"k": 1}]}) == ["--mix", "true", '{"k":1}']


def test_skip_and_order():
    flags = sglang_flags({"tp-size": 4, "b": 1, "tensor_parallel_size": 4, "a": 2}, skip=("tp-size", "tensor-parallel-size"))
    assert flags == ["--b", "1", "--a", "2"]


def test_hostile_values_stay_single_arguments():
    flags = sglang_flags({"served-name": "a b; $(rm -rf /) `x`\n"})
    assert flags == ["--served-name", "a b; $(rm -rf /) `x`\n"]
