"""Simulated workers behind the real sglang-router (0.3.2): regular and prefill/decode mode.

Also checks, from the router's own log, that it talked to nothing but 127.0.0.1: it loads its
tokenizer from the workers' reported model_path, which must be a local directory.
"""

from __future__ import annotations

import asyncio
import importlib.util
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sim_helpers import FAST, free_port, http_status, require_tool, sse_events

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def router(tmp_path):
    require_tool(importlib.util.find_spec("sglang_router") is not None,
                 "sglang-router (pip install sglang-router==0.3.2)")
    procs = []

    def start(*args: str) -> tuple[str, Path]:
        port = free_port()
        log = tmp_path / f"router-{port}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "sglang_router.launch_router", "--host", "127.0.0.1",
                                     "--port", str(port), "--log-level", "info", *args],
                                    stdout=fh, stderr=subprocess.STDOUT)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while http_status(port, "/health") != 200:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}", log

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_routable(url: str, timeout: float = 30.0) -> None:
    """The router is up before its workers are registered: wait until a request goes through."""
    deadline = time.monotonic() + timeout
    while True:
        resp = httpx.post(url + "/generate", json={"text": "ping", "sampling_params": {"max_new_tokens": 1}},
                          timeout=10)
        if resp.status_code == 200:
            return
        assert time.monotonic() < deadline, resp.text
        time.sleep(0.1)


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(name)


def assert_loopback_only(log: Path) -> None:
    text = ANSI.sub("", log.read_text(errors="replace"))
    assert "huggingface" not in text.lower(), text
    assert "Failed to load tokenizer" not in text, text
    hosts = set(re.findall(r"\b[a-z][a-z0-9+.-]*://\[?([A-Za-z0-9_.:-]+?)\]?(?::\d+)?(?=[/\s\"',)}]|$)", text))
    assert hosts <= {"127.0.0.1", "localhost"}, hosts
    ips = set(re.findall(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d.])", text))
    assert all(ip.startswith("127.") for ip in ips), ips
    assert "Successfully registered tokenizer" in text  # from the local directory


def test_regular_mode_round_robin_two_workers(start_sim, router, model_dir):
    workers = [start_sim("--model-path", str(model_dir), "--served-model-name", "sim/model", *FAST) for _ in range(2)]
    url, log = router("--worker-urls", *(w.url for w in workers), "--policy", "round_robin")
    wait_routable(url)
    before = [metric(w.url, "sglang:num_requests_total") for w in workers]
    client = httpx.Client(base_url=url, timeout=30)
    for _ in range(3):
        resp = client.post("/v1/completions", json={"model": "sim/model", "prompt": "hello", "max_tokens": 5,
                                                    "ignore_eos": True}).json()
        assert resp["usage"]["completion_tokens"] == 5
    for _ in range(3):
        with client.stream("POST", "/v1/chat/completions", json={
                "model": "sim/model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 7,
                "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True}}) as stream:
            events = sse_events(stream.iter_lines())
        assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 7
        assert sum(1 for e in events[:-2] if e["choices"][0]["delta"].get("content")) == 7
    after = [metric(w.url, "sglang:num_requests_total") for w in workers]
    assert [a - b for a, b in zip(after, before)] == [3, 3]
    models = client.get("/v1/models").json()
    assert "sim/model" in [m["id"] for m in models["data"]]
    assert_loopback_only(log)


def test_pd_mode_sends_each_request_to_prefill_and_decode(start_sim, router, model_dir):
    bootstrap = free_port()
    prefill = start_sim("--model-path", str(model_dir), "--disaggregation-mode", "prefill",
                        "--disaggregation-bootstrap-port", str(bootstrap), "--sim-prefill-tokens-per-s-per-gpu", "1000")
    decode = start_sim("--model-path", str(model_dir), "--disaggregation-mode", "decode", "--sim-kv-transfer-ms", "30",
                       "--sim-decode-step-ms", "20", "--sim-decode-step-ms-per-request", "0")
    url, log = router("--pd-disaggregation", "--prefill", prefill.url, str(bootstrap), "--decode", decode.url,
                      "--policy", "round_robin")
    wait_routable(url)
    counts = [metric(s.url, "sglang:num_requests_total") for s in (prefill, decode)]

    async def streamed() -> tuple[float, list]:
        async with httpx.AsyncClient(timeout=30) as client:
            t0 = time.perf_counter()
            ttft, events = None, []
            body = {"model": str(model_dir), "prompt": " ".join(["w"] * 200), "max_tokens": 6, "ignore_eos": True,
                    "stream": True, "stream_options": {"include_usage": True}}
            async with client.stream("POST", url + "/v1/completions", json=body) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if ttft is None and line.startswith("data: {"):
                        ttft = time.perf_counter() - t0
                    events.extend(sse_events([line]))
            return ttft, events

    ttft, events = asyncio.run(streamed())
    # prefill 200 tokens at 1000 tok/s, then 30 ms KV transfer, then the first decode step of 20 ms
    assert 0.2 + 0.03 + 0.02 - 0.01 <= ttft <= 0.25 + 0.25, ttft
    assert events[-1] == "[DONE]"
    assert events[-2]["usage"] == {"prompt_tokens": 200, "completion_tokens": 6, "total_tokens": 206,
                                   "prompt_tokens_details": None}
    generated = httpx.post(url + "/generate", json={"text": "a b c", "sampling_params": {"max_new_tokens": 4}},
                           timeout=30).json()
    assert generated["meta_info"]["completion_tokens"] == 4  # the decode worker's answer, not the prefill's
    assert [metric(s.url, "sglang:num_requests_total") - c for s, c in zip((prefill, decode), counts)] == [2, 2]
    assert "no bootstrap host/port" not in decode.log
    assert_loopback_only(log)
