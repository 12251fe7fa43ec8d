"""SGLang's endpoints on a real simulated-engine process: shapes, exact usage, errors."""

from __future__ import annotations

import json

import httpx
import pytest
from sim_helpers import FAST, SimProcess, free_port, sse_events


@pytest.fixture(scope="module")
def sim(tmp_path_factory, model_dir):
    port = free_port()
    proc = SimProcess(["--host", "127.0.0.1", "--port", str(port), "--model-path", str(model_dir),
                       "--served-model-name", "org/sim-model", "--tp-size", "4", "--dp-size", "2",
                       "--ep-size", "8", "--max-running-requests", "64", "--mem-fraction-static", "0.82",
                       "--enable-dp-attention", "--cuda-graph-bs", "1", "2", "4", "--chunked-prefill-size", "-1",
                       "--sim-eos-probability", "0", *FAST],
                      tmp_path_factory.mktemp("sim") / "sim.log", port)
    proc.wait_healthy()
    yield proc
    assert proc.stop() == 0


@pytest.fixture(scope="module")
def client(sim):
    with httpx.Client(base_url=sim.url, timeout=30) as c:
        yield c


def stream(client: httpx.Client, path: str, body: dict) -> list:
    with client.stream("POST", path, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return sse_events(resp.iter_lines())


def test_health_and_generate_health(client):
    assert client.get("/health").status_code == 200
    assert client.get("/health_generate").status_code == 200


@pytest.mark.parametrize("path", ["/server_info", "/get_server_info"])
def test_server_info(client, model_dir, path):
    info = client.get(path).json()
    assert info["model_path"] == str(model_dir) and info["tokenizer_path"] == str(model_dir)
    assert info["served_model_name"] == "org/sim-model"
    assert (info["tp_size"], info["dp_size"], info["ep_size"]) == (4, 2, 8)
    assert info["disaggregation_mode"] == "null"
    assert info["max_running_requests"] == 64
    # ignored SGLang flags are reported with their values
    assert info["mem_fraction_static"] == "0.82" and info["enable_dp_attention"] is True
    assert info["cuda_graph_bs"] == ["1", "2", "4"] and info["chunked_prefill_size"] == "-1"
    assert info["simulated"] is True and info["sim"]["vocab"] == "tokenizer"


@pytest.mark.parametrize("path", ["/model_info", "/get_model_info"])
def test_model_info(client, model_dir, path):
    info = client.get(path).json()
    assert info["model_path"] == str(model_dir) and info["is_generation"] is True
    assert info["architectures"] == ["LlamaForCausalLM"]


def test_models(client):
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["org/sim-model"]


def test_completion_stream_usage_is_exact(client):
    events = stream(client, "/v1/completions", {"model": "m", "prompt": "one two three four", "max_tokens": 17,
                                                "ignore_eos": True, "stream": True,
                                                "stream_options": {"include_usage": True}})
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 4, "completion_tokens": 17, "total_tokens": 21,
                                    "prompt_tokens_details": None}
    content = [e for e in events[:-2]]
    assert len(content) == 17 and all(e["choices"][0]["text"] for e in content)
    assert [e["choices"][0]["finish_reason"] for e in content] == [None] * 16 + ["length"]
    assert all(e["object"] == "text_completion" and e["usage"] is None for e in content)
    assert len({e["id"] for e in events[:-1]}) == 1


def test_completion_stream_without_usage(client):
    events = stream(client, "/v1/completions", {"prompt": "x", "max_tokens": 3, "stream": True})
    assert events[-1] == "[DONE]" and len(events) == 4
    assert all(e["choices"] for e in events[:-1])


def test_completion_token_id_prompt_and_text(client):
    resp = client.post("/v1/completions", json={"prompt": [5, 6, 7, 8, 9], "max_tokens": 6}).json()
    assert resp["usage"]["prompt_tokens"] == 5 and resp["usage"]["completion_tokens"] == 6
    assert len(resp["choices"][0]["text"].split()) == 6
    assert resp["choices"][0]["finish_reason"] == "length"
    # one-element batches are unwrapped, like SGLang does for n=1
    resp2 = client.post("/v1/completions", json={"prompt": [[5, 6, 7, 8, 9]], "max_tokens": 6}).json()
    assert resp2["choices"][0]["text"] == resp["choices"][0]["text"]


def test_default_max_tokens_is_16(client):
    resp = client.post("/v1/completions", json={"prompt": "hello"}).json()
    assert resp["usage"]["completion_tokens"] == 16


def test_chat_stream(client):
    events = stream(client, "/v1/chat/completions", {
        "model": "m", "messages": [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
        "max_tokens": 5, "stream": True, "stream_options": {"include_usage": True}})
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = events[1:-2]
    assert len(content) == 5 and all(e["object"] == "chat.completion.chunk" for e in content)
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    usage = events[-2]["usage"]
    # ChatML template: <|im_start|> system \n be brief <|im_end|> ... counted by the model dir's tokenizer
    assert usage["completion_tokens"] == 5 and usage["prompt_tokens"] > 6


def test_chat_non_stream_max_completion_tokens(client):
    resp = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 4}).json()
    assert resp["object"] == "chat.completion"
    assert resp["choices"][0]["message"]["role"] == "assistant"
    assert len(resp["choices"][0]["message"]["content"].split()) == 4
    assert resp["usage"]["completion_tokens"] == 4


def test_generate_text_and_input_ids(client):
    body = {"text": "alpha beta", "sampling_params": {"max_new_tokens": 7},
            "bootstrap_host": "127.0.0.1", "bootstrap_port": 1, "bootstrap_room": 12345}
    resp = client.post("/generate", json=body).json()
    assert len(resp["output_ids"]) == 7 and len(resp["text"].split()) == 7
    meta = resp["meta_info"]
    assert meta["prompt_tokens"] == 2 and meta["completion_tokens"] == 7
    assert meta["finish_reason"] == {"type": "length", "length": 7}
    ids = client.post("/generate", json={"input_ids": [1, 2, 3], "sampling_params": {"max_new_tokens": 2}}).json()
    assert ids["meta_info"]["prompt_tokens"] == 3 and len(ids["output_ids"]) == 2


def test_generate_stream_is_cumulative(client):
    events = stream(client, "/generate", {"text": "a b c", "sampling_params": {"max_new_tokens": 4}, "stream": True})
    assert events[-1] == "[DONE]"
    texts = [e["text"] for e in events[:-1]]
    assert len(texts) == 4 and all(texts[i + 1].startswith(texts[i]) for i in range(3))
    assert events[-2]["meta_info"]["finish_reason"] == {"type": "length", "length": 4}
    assert [e["meta_info"]["completion_tokens"] for e in events[:-1]] == [1, 2, 3, 4]


def test_flush_cache_and_version(client):
    assert client.post("/flush_cache").status_code == 200
    assert client.get("/version").json()["version"]


def test_metrics_count_tokens(client):
    def counter(name: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(name)

    before = counter("sglang:generation_tokens_total"), counter("sglang:num_requests_total")
    client.post("/v1/completions", json={"prompt": "x", "max_tokens": 9, "ignore_eos": True})
    after = counter("sglang:generation_tokens_total"), counter("sglang:num_requests_total")
    assert after[0] - before[0] == 9 and after[1] - before[1] == 1


@pytest.mark.parametrize("path,body,fragment", [
    ("/v1/completions", {"prompt": "x", "n": 2}, "n > 1"),
    ("/v1/completions", {"prompt": {"bad": 1}}, "prompt must be"),
    ("/v1/completions", {"prompt": ["a", "b"]}, "batched"),
    ("/v1/completions", {"prompt": "x", "max_tokens": "many"}, "max_tokens"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/generate", {"sampling_params": {}}, "text or input_ids"),
])
def test_bad_requests_get_400(client, path, body, fragment):
    resp = client.post(path, json=body)
    assert resp.status_code == 400
    assert fragment in resp.json()["message"]


def test_invalid_json_gets_400(client):
    resp = client.post("/v1/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400


def test_prompt_longer_than_context_is_rejected(start_sim):
    sim = start_sim("--context-length", "8", *FAST)
    client = httpx.Client(base_url=sim.url)
    resp = client.post("/v1/completions", json={"prompt": "a b c d e f g h i j", "max_tokens": 2})
    assert resp.status_code == 400 and "context length" in resp.json()["message"]
    ok = client.post("/v1/completions", json={"prompt": "a b c", "max_tokens": 100}).json()
    assert ok["usage"]["completion_tokens"] == 5  # capped at context_length - prompt


def test_eos_min_tokens_and_ignore_eos(start_sim):
    sim = start_sim("--sim-eos-probability", "1", *FAST)
    client, url = httpx.Client(), sim.url + "/v1/completions"
    stopped = client.post(url, json={"prompt": "x", "max_tokens": 50}).json()
    assert stopped["choices"][0]["finish_reason"] == "stop" and stopped["usage"]["completion_tokens"] == 1
    assert stopped["choices"][0]["matched_stop"] is not None
    at_min = client.post(url, json={"prompt": "x", "max_tokens": 50, "min_tokens": 6}).json()
    # min_tokens regular tokens, then EOS (counted, without text)
    assert at_min["usage"]["completion_tokens"] == 7 and len(at_min["choices"][0]["text"].split()) == 6
    full = client.post(url, json={"prompt": "x", "max_tokens": 50, "ignore_eos": True}).json()
    assert full["usage"]["completion_tokens"] == 50 and full["choices"][0]["finish_reason"] == "length"


def test_stream_interval_batches_tokens(start_sim):
    sim = start_sim("--stream-interval", "4", *FAST)
    with httpx.stream("POST", sim.url + "/v1/completions",
                      json={"prompt": "x", "max_tokens": 10, "stream": True, "ignore_eos": True}) as resp:
        events = sse_events(resp.iter_lines())
    words = [len(e["choices"][0]["text"].split()) for e in events[:-1]]
    assert sum(words) == 10 and words == [1, 4, 4, 1]


def test_builtin_vocab_without_model_dir_reports_a_local_tokenizer(start_sim):
    sim = start_sim("--model-path", "org/not-a-local-dir", *FAST)
    client = httpx.Client(base_url=sim.url)
    info = client.get("/server_info").json()
    # sglang-router loads its tokenizer from model_path: it must be local, never a hub name
    from pathlib import Path
    assert Path(info["model_path"], "tokenizer.json").is_file()
    assert info["tokenizer_path"] == info["model_path"]
    assert info["served_model_name"] == "org/not-a-local-dir"
    assert info["sim"]["vocab"] == "builtin" and info["sim"]["model_path_arg"] == "org/not-a-local-dir"
    resp = client.post("/v1/completions", json={"prompt": "hello there, world!", "max_tokens": 3}).json()
    assert resp["usage"]["prompt_tokens"] == 5  # hello there , world !
    assert json.dumps(resp)


def test_client_disconnect_frees_the_slot(start_sim):
    import socket
    import time

    sim = start_sim("--sim-decode-step-ms", "10", "--sim-decode-step-ms-per-request", "0")
    client = httpx.Client(base_url=sim.url)

    def gauge(name: str) -> float:
        line = next(x for x in client.get("/metrics").text.splitlines() if x.startswith(name + "{"))
        return float(line.rsplit(" ", 1)[1])

    body = b'{"prompt": "x", "max_tokens": 100000, "ignore_eos": true, "stream": true}'
    for _ in range(3):
        conn = socket.create_connection(("127.0.0.1", sim.port))
        conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
        received = b""
        while b"data: " not in received:
            received += conn.recv(65536)
        conn.close()
    deadline = time.monotonic() + 5
    while gauge("sglang:num_running_reqs") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gauge("sglang:num_running_reqs") == 0
    assert gauge("srt_sim:aborted_requests_total") == 3
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 200
    assert "Traceback" not in sim.log
