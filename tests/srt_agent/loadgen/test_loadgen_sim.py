"""The load generator against the project's simulated SGLang server (a real HTTP server)."""

import socket
import subprocess
import sys
import time

import pytest

from srt_agent.loadgen import LoadConfig, check_point, run_point

pytest.importorskip("srt_agent.sim")
PORT = 31300


@pytest.fixture(scope="module")
def sim_url():
    proc = subprocess.Popen([sys.executable, "-m", "srt_agent.sim", "--host", "127.0.0.1", "--port", str(PORT),
                             "--model-path", "loadgen-test", "--served-model-name", "m",
                             "--sim-decode-step-ms", "2", "--sim-decode-step-ms-per-request", "0",
                             "--sim-prefill-tokens-per-s-per-gpu", "0", "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", PORT), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the simulated server did not start")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{PORT}"
    finally:
        proc.terminate()
        proc.wait(10)


def test_closed_loop_against_the_sim(sim_url):
    r = run_point(LoadConfig(url=sim_url, model="m", isl=64, osl=16, concurrency=8, num_prompts=24,
                             warmup_multiplier=1.0, processes=1))
    assert (r["completed"], r["failed"]) == (24, 0)
    assert r["total_output_tokens"] == 24 * 16  # ignore_eos honoured, counted from usage
    assert r["total_input_tokens"] == 24 * 64
    assert r["median_itl_ms"] >= 1.5  # one decode step of 2 ms per token
    assert not any("usage" in w or "fewer output tokens" in w for w in r["client_warnings"])
    check_point(r)
