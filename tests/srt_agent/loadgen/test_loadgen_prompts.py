"""Prompt construction: lengths, unique prefixes, range ratio, tokenizer text prompts."""

import json

import pytest

from srt_agent.errors import BenchmarkError
from srt_agent.loadgen.prompts import PREFIX_TOKENS, build_workload, sample_lengths


def test_id_prompts_have_isl_tokens_and_unique_prefixes():
    idx = list(range(300)) + [(1 << 40) + i for i in range(10)]
    w = build_workload(idx, 50, 7, seed=1)
    prompts = [json.loads(w.prompt_json(g)) for g in idx]
    assert all(len(p) == 50 for p in prompts)
    assert len({tuple(p[:PREFIX_TOKENS]) for p in prompts}) == len(idx)
    assert len({p[0] for p in prompts[:300]}) == 300  # consecutive requests differ at token 0
    assert all(w.output_lens[g] == 7 for g in idx)


def test_short_prompts():
    w = build_workload([0, 1], 2, 1)
    assert [len(json.loads(w.prompt_json(g))) for g in (0, 1)] == [2, 2]


def test_same_seed_same_prompts():
    a, b = build_workload(list(range(5)), 20, 3, seed=7), build_workload(list(range(5)), 20, 3, seed=7)
    assert [a.prompt_json(g) for g in range(5)] == [b.prompt_json(g) for g in range(5)]


def test_random_range_ratio_bounds():
    w = build_workload(list(range(400)), 100, 40, seed=2, random_range_ratio=0.5)
    ins = [len(json.loads(w.prompt_json(g))) for g in range(400)]
    outs = list(w.output_lens.values())
    assert min(ins) >= 50 and max(ins) <= 100 and len(set(ins)) > 20
    assert min(outs) >= 20 and max(outs) <= 40
    with pytest.raises(BenchmarkError):
        sample_lengths(3, 10, 1.5, __import__("random").Random(0))


def test_tokenizer_text_prompts(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {"[UNK]": 0, **{f"w{i}": i + 1 for i in range(500)}, "\"q\\": 501}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["<s>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    w = build_workload(list(range(20)), 64, 5, seed=3, tokenizer=str(tmp_path), random_range_ratio=0.5)
    assert w.kind == "text"
    for g in range(20):
        text = json.loads(w.prompt_json(g))  # a valid JSON string even with quotes/backslashes inside
        ids = tok.encode(text, add_special_tokens=False).ids
        assert len(ids) == w.input_lens[g]
        assert 0 not in ids and tok.token_to_id("<s>") not in ids


def test_missing_tokenizer_is_a_clear_error(tmp_path):
    with pytest.raises(BenchmarkError, match="tokenizer.json"):
        build_workload([0], 8, 2, tokenizer=str(tmp_path))
