"""Prefill/decode hand-off between two real simulated workers, driven directly (no router)."""

from __future__ import annotations

import asyncio
import time

import httpx
from sim_helpers import free_port


def pd_pair(start_sim, *, prefill_rate: str = "1000", kv_ms: str = "30", timeout_s: str = "300"):
    bootstrap = free_port()
    prefill = start_sim("--disaggregation-mode", "prefill", "--disaggregation-bootstrap-port", str(bootstrap),
                        "--sim-prefill-tokens-per-s-per-gpu", prefill_rate)
    decode = start_sim("--disaggregation-mode", "decode", "--sim-kv-transfer-ms", kv_ms, "--sim-decode-step-ms", "20",
                       "--sim-decode-step-ms-per-request", "0", "--sim-kv-timeout-s", timeout_s)
    return prefill, decode, bootstrap


async def send_both(prefill_url: str, decode_url: str, body: dict, prefill_delay: float = 0.0) -> tuple:
    async with httpx.AsyncClient(timeout=30) as client:
        async def to_prefill():
            await asyncio.sleep(prefill_delay)
            return await client.post(prefill_url + "/generate", json=body)

        async def to_decode():
            t0 = time.perf_counter()
            resp = await client.post(decode_url + "/generate", json=body)
            return resp, time.perf_counter() - t0

        return await asyncio.gather(to_prefill(), to_decode())


def test_decode_waits_for_the_prefill_of_its_room(start_sim):
    prefill, decode, bootstrap = pd_pair(start_sim)
    body = {"text": " ".join(["w"] * 300), "sampling_params": {"max_new_tokens": 4},
            "bootstrap_host": "127.0.0.1", "bootstrap_port": bootstrap, "bootstrap_room": 987654321}
    # the decode request arrives first, the prefill one 100 ms later (the order a router gives is random)
    p, (d, decode_latency) = asyncio.run(send_both(prefill.url, decode.url, body, prefill_delay=0.1))
    assert p.status_code == 200 and d.status_code == 200
    assert p.json()["meta_info"]["completion_tokens"] == 1  # a prefill worker answers with one token
    assert d.json()["meta_info"]["completion_tokens"] == 4 and d.json()["meta_info"]["prompt_tokens"] == 300
    # 100 ms delay + 300 ms prefill + 30 ms KV transfer + 4 decode steps of 20 ms
    assert 0.1 + 0.3 + 0.03 + 0.08 - 0.01 <= decode_latency <= 0.51 + 0.25, decode_latency


def test_prefill_done_before_decode_asks(start_sim):
    prefill, decode, bootstrap = pd_pair(start_sim, prefill_rate="0", kv_ms="0")
    body = {"text": "a b", "sampling_params": {"max_new_tokens": 2}, "bootstrap_host": "127.0.0.1",
            "bootstrap_port": bootstrap, "bootstrap_room": 5}
    assert httpx.post(prefill.url + "/generate", json=body).status_code == 200
    t0 = time.perf_counter()
    assert httpx.post(decode.url + "/generate", json=body).json()["meta_info"]["completion_tokens"] == 2
    assert time.perf_counter() - t0 < 0.5


def test_decode_gives_up_when_the_prefill_never_comes(start_sim):
    _prefill, decode, bootstrap = pd_pair(start_sim, timeout_s="0.5")
    body = {"text": "a", "sampling_params": {"max_new_tokens": 2}, "bootstrap_host": "127.0.0.1",
            "bootstrap_port": bootstrap, "bootstrap_room": 77, "stream": True}
    resp = httpx.post(decode.url + "/generate", json=body, timeout=10)
    assert resp.status_code == 500 and "timed out" in resp.json()["message"]


def test_decode_without_bootstrap_fields_waits_only_the_transfer_time(start_sim):
    _, decode, _ = pd_pair(start_sim, kv_ms="150")
    t0 = time.perf_counter()
    resp = httpx.post(decode.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert resp.status_code == 200 and 0.15 <= time.perf_counter() - t0 < 0.5


def test_request_without_bootstrap_host_waits_only_the_transfer_delay(start_sim):
    _, decode, _ = pd_pair(start_sim, kv_ms="0")
    body = {"text": "a", "sampling_params": {"max_new_tokens": 1}, "bootstrap_room": 1}
    t0 = time.perf_counter()
    assert httpx.post(decode.url + "/generate", json=body).status_code == 200
    assert time.perf_counter() - t0 < 0.5
    assert "no bootstrap host/port" in decode.log


def test_prefill_bootstrap_port_in_use_fails_like_sglang(start_sim, tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = free_port()
        proc = subprocess.run([sys.executable, "-m", "srt_agent.sim", "--port", str(port), "--disaggregation-mode",
                               "prefill", "--disaggregation-bootstrap-port", str(busy.getsockname()[1])],
                              capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1 and "Cannot start" in proc.stdout
