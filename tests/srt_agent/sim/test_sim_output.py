"""Generated text: deterministic per seed and request, and the local model directory it can use."""

from __future__ import annotations

import json

import httpx
import pytest
from sim_helpers import FAST
from tokenizers import Tokenizer

from srt_agent.sim.model_dir import shared_model_dir, write_model_dir
from srt_agent.sim.vocab import BuiltinVocab, TokenizerVocab, load_vocab


def completion(url: str, prompt, max_tokens: int = 20, stream: bool = False) -> str:
    body = {"prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": stream}
    if not stream:
        return httpx.post(url + "/v1/completions", json=body).json()["choices"][0]["text"]
    with httpx.stream("POST", url + "/v1/completions", json=body) as resp:
        return "".join(json.loads(line[6:])["choices"][0]["text"] for line in resp.iter_lines()
                       if line.startswith("data: {"))


def test_same_seed_same_text_across_processes_and_modes(start_sim):
    a = start_sim("--sim-seed", "7", *FAST)
    b = start_sim("--sim-seed", "7", *FAST)
    c = start_sim("--sim-seed", "8", *FAST)
    text = completion(a.url, "tell me a story")
    assert text == completion(b.url, "tell me a story")
    assert text == completion(a.url, "tell me a story", stream=True)  # streaming changes nothing
    assert text != completion(c.url, "tell me a story")
    assert text != completion(a.url, "tell me another story")
    assert completion(a.url, [1, 2, 3]) == completion(b.url, [1, 2, 3]) != completion(a.url, [1, 2, 4])
    # a shorter request is a prefix of a longer one with the same prompt
    assert text.startswith(completion(a.url, "tell me a story", max_tokens=5))


def test_concurrent_requests_do_not_change_each_others_text(start_sim):
    import asyncio

    sim = start_sim("--sim-decode-step-ms", "2", "--sim-decode-step-ms-per-request", "0")
    alone = completion(sim.url, "prompt 3", max_tokens=30)

    async def many() -> list[str]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one(i: int) -> str:
                r = await client.post(sim.url + "/v1/completions",
                                      json={"prompt": f"prompt {i}", "max_tokens": 30, "ignore_eos": True})
                return r.json()["choices"][0]["text"]
            return await asyncio.gather(*(one(i) for i in range(8)))

    results = asyncio.run(many())
    assert results[3] == alone
    assert len(set(results)) == 8


def test_write_model_dir(tmp_path):
    out = write_model_dir(tmp_path / "m")
    names = {p.name for p in out.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
            "chat_template.jinja"} <= names
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert tok.get_vocab_size() == 32000
    # Dynamo's mocker emits random ids around 600-2000: every one must decode to a word
    for i in range(600, 2001):
        assert tok.decode([i]).strip().isalpha(), i
    assert tok.decode(list(range(600, 604))).count(" ") == 3
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in config["chat_template"] and config["eos_token"] == "</s>"
    eos = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert tok.id_to_token(eos) == "</s>"
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 32000
    small = write_model_dir(tmp_path / "small", vocab_size=4000)
    assert Tokenizer.from_file(str(small / "tokenizer.json")).get_vocab_size() == 4000


def test_model_dir_and_builtin_vocab_count_alike(tmp_path):
    builtin, tokenizer = BuiltinVocab(), TokenizerVocab(write_model_dir(tmp_path / "m"))
    for text in ("hello world", "Hello, world!!  How are you?", "<|im_start|>user\nhi<|im_end|>\n", "a-b c_d 12.5"):
        assert builtin.count_text(text) == tokenizer.count_text(text), text
    messages = [{"role": "user", "content": "hi there"}]
    assert builtin.render_chat(messages) == tokenizer.render_chat(messages)
    assert tokenizer.candidate_text[:50] == builtin.candidate_text[:50]


def test_load_vocab_falls_back_to_builtin(tmp_path):
    assert isinstance(load_vocab(None), BuiltinVocab)
    assert isinstance(load_vocab(str(tmp_path)), BuiltinVocab)  # no tokenizer.json there
    assert isinstance(load_vocab(str(write_model_dir(tmp_path / "m"))), TokenizerVocab)


def test_shared_model_dir_is_reused():
    first = shared_model_dir()
    assert (first / "tokenizer.json").is_file() and shared_model_dir() == first


@pytest.mark.parametrize("template", [None, "{{ raise_exception('no') }}", "{% for %}"])
def test_broken_or_missing_chat_template_falls_back_to_chatml(tmp_path, template):
    out = write_model_dir(tmp_path / "m")
    config = json.loads((out / "tokenizer_config.json").read_text())
    if template is None:
        del config["chat_template"]
    else:
        config["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    rendered = TokenizerVocab(out).render_chat([{"role": "user", "content": "hi"}])
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
