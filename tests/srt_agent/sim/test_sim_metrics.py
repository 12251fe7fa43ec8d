"""The simulated worker's /metrics: SGLang's names, values that follow the scheduler's state."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict[tuple[str, str], float]:
    """{(sample name, mode label or ""): value} of one /metrics page, parsed by prometheus_client."""
    text = httpx.get(url + "/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, s.labels.get("mode", ""))] = s.value
    return out


def test_metrics_follow_running_batch(start_sim):
    sim = start_sim("--sim-decode-step-ms", "20", "--sim-decode-step-ms-per-request", "0",
                    "--sim-eos-probability", "0", "--context-length", "4096", "--max-running-requests", "8")
    idle = scrape(sim.url)
    for name in ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage", "sglang:gen_throughput",
                 "sglang:cache_hit_rate", "sglang:num_used_tokens", "sglang:max_total_num_tokens"):
        assert (name, "") in idle, name
    assert idle[("sglang:num_running_reqs", "")] == 0 and idle[("sglang:token_usage", "")] == 0
    assert idle[("sglang:max_total_num_tokens", "")] == 4096 * 8

    def one() -> None:
        httpx.post(sim.url + "/v1/completions", json={"prompt": "hello " * 50, "max_tokens": 100,
                                                      "ignore_eos": True}, timeout=30)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)  # 4 requests x 100 tokens at 20 ms/step: decoding for ~2 s
    busy = scrape(sim.url)
    for t in threads:
        t.join()
    done = scrape(sim.url)
    assert busy[("sglang:num_running_reqs", "")] == 4
    assert busy[("sglang:num_used_tokens", "")] > 4 * 50
    assert busy[("sglang:token_usage", "")] == pytest.approx(busy[("sglang:num_used_tokens", "")] / (4096 * 8), abs=1e-6)
    # 4 running requests, one token each per 20 ms step: ~200 tok/s (timer slack on a busy box)
    assert 120 < busy[("sglang:gen_throughput", "")] < 260
    assert done[("sglang:num_running_reqs", "")] == 0 and done[("sglang:gen_throughput", "")] == 0
    assert done[("sglang:generation_tokens_total", "")] - idle[("sglang:generation_tokens_total", "")] == 400
    prefill = done[("sglang:realtime_tokens_total", "prefill_compute")] - idle[("sglang:realtime_tokens_total",
                                                                                  "prefill_compute")]
    assert prefill == done[("sglang:prompt_tokens_total", "")] - idle[("sglang:prompt_tokens_total", "")] > 0
    # the first token of each request comes from its prefill pass, the other 99 from decode passes
    assert done[("sglang:realtime_tokens_total", "decode")] - idle[("sglang:realtime_tokens_total", "decode")] == 396
