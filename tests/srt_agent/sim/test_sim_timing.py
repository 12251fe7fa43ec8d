"""The timing model, measured from a real client: TTFT, ITL, batch growth, FIFO queue, startup."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

import httpx
from sim_helpers import http_status


async def timed_stream(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int,
                       path: str = "/v1/completions") -> dict:
    """Send one streamed request; return TTFT, inter-chunk gaps and end-to-end latency (seconds)."""
    body = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    t0 = time.perf_counter()
    arrivals = []
    async with client.stream("POST", url + path, json=body) as resp:
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.perf_counter())
    assert len(arrivals) == max_tokens
    return {"ttft": arrivals[0] - t0, "itl": [b - a for a, b in itertools.pairwise(arrivals)],
            "e2e": arrivals[-1] - t0, "t0": t0}


async def run_streams(url: str, n: int, prompt: str, max_tokens: int, stagger_s: float = 0.0) -> list[dict]:
    async with httpx.AsyncClient(timeout=30) as client:
        await timed_stream(client, url, "warm up", 2)  # connection set-up out of the measurement

        async def one(i: int) -> dict:
            await asyncio.sleep(i * stagger_s)
            return await timed_stream(client, url, prompt, max_tokens)

        return await asyncio.gather(*(one(i) for i in range(n)))


def words(n: int) -> str:
    return " ".join(["word"] * n)


def test_ttft_is_prefill_time_and_itl_is_step_time(start_sim):
    # prefill: 200 tokens / (1000 tok/s/GPU * tp 4) = 50 ms; decode step 40 ms
    sim = start_sim("--tp-size", "4", "--sim-prefill-tokens-per-s-per-gpu", "1000", "--sim-decode-step-ms", "40",
                    "--sim-decode-step-ms-per-request", "0")
    (r,) = asyncio.run(run_streams(sim.url, 1, words(200), 12))
    assert 0.045 <= r["ttft"] <= 0.050 + 0.060, r["ttft"]
    assert 0.036 <= statistics.median(r["itl"]) <= 0.046, r["itl"]
    assert 0.05 + 11 * 0.040 - 0.01 <= r["e2e"] <= 0.05 + 11 * 0.040 + 0.12, r["e2e"]


def test_step_time_grows_with_running_requests_per_dp_rank(start_sim):
    # 4 running requests: step = 10 + 10 * 4 = 50 ms with dp 1, 10 + 10 * ceil(4 / 2) = 30 ms with dp 2
    for dp, expected in ((1, 0.050), (2, 0.030)):
        sim = start_sim("--dp-size", str(dp), "--sim-prefill-tokens-per-s-per-gpu", "0", "--sim-decode-step-ms", "10",
                        "--sim-decode-step-ms-per-request", "10")
        results = asyncio.run(run_streams(sim.url, 4, "x", 12))
        # skip the first gaps (the four requests join at slightly different passes)
        gaps = [g for r in results for g in r["itl"][3:]]
        assert abs(statistics.median(gaps) - expected) <= 0.008, (dp, statistics.median(gaps))


def test_max_running_requests_queues_fifo(start_sim):
    sim = start_sim("--max-running-requests", "1", "--sim-prefill-tokens-per-s-per-gpu", "0",
                    "--sim-decode-step-ms", "20", "--sim-decode-step-ms-per-request", "0")
    first, second = asyncio.run(run_streams(sim.url, 2, "x", 6, stagger_s=0.005))
    # the second request only starts once the first finished (1 prefill + 5 decode steps of 20 ms)
    assert second["t0"] + second["ttft"] >= first["t0"] + first["e2e"] - 0.002
    assert second["ttft"] >= 0.09, second["ttft"]
    # and the sim override wins over SGLang's flag
    sim2 = start_sim("--max-running-requests", "1", "--sim-max-running-requests", "2",
                     "--sim-prefill-tokens-per-s-per-gpu", "0", "--sim-decode-step-ms", "20",
                     "--sim-decode-step-ms-per-request", "0")
    a, b = asyncio.run(run_streams(sim2.url, 2, "x", 6, stagger_s=0.005))
    # both run at once: the second's first token comes steps before the first request ends
    assert b["t0"] + b["ttft"] < a["t0"] + a["e2e"] - 0.04, (a, b)


def test_zero_latency_mode(start_sim):
    sim = start_sim("--sim-prefill-tokens-per-s-per-gpu", "0", "--sim-decode-step-ms", "0",
                    "--sim-decode-step-ms-per-request", "0", "--sim-kv-transfer-ms", "0")
    t0 = time.perf_counter()
    results = asyncio.run(run_streams(sim.url, 8, words(1000), 500))
    assert time.perf_counter() - t0 < 5
    assert all(len(r["itl"]) == 499 for r in results)


def test_startup_delay_gates_health(start_sim):
    t0 = time.monotonic()
    sim = start_sim("--sim-startup-s", "1.5", healthy=False)
    assert http_status(sim.port, "/health") == 503
    assert http_status(sim.port, "/server_info") == 200  # info is there while "loading"
    resp = httpx.post(sim.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1})
    assert resp.status_code == 503
    sim.wait_healthy()
    assert time.monotonic() - t0 >= 1.5
    assert "The server is fired up and ready to roll!" in sim.log
    assert httpx.post(sim.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200
