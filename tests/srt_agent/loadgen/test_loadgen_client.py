"""The load generator against a real local SSE server (conftest.SseServer)."""

import json
import subprocess
import sys

import pytest

from srt_agent.errors import BenchmarkError
from srt_agent.loadgen import LoadConfig, check_point, run_point


def point(server, model, **kw):
    cfg = dict(url=server.url, model=model, isl=32, osl=6, concurrency=4, num_prompts=12, warmup_multiplier=1.0,
               processes=1)
    cfg.update(kw)
    return run_point(LoadConfig(**cfg))


def test_counts_prompts_and_concurrency(sse_server):
    before = sse_server.requests
    sse_server.max_in_flight = 0
    r = point(sse_server, "ok;ttft=5;itl=2")
    assert (r["completed"], r["failed"]) == (12, 0)
    assert r["total_output_tokens"] == 12 * 6
    assert r["total_input_tokens"] == 12 * 32  # from usage.prompt_tokens
    assert sse_server.requests - before == 12 + 4  # measured + warmup
    assert sse_server.max_in_flight == 4
    assert r["median_ttft_ms"] >= 5 and r["median_itl_ms"] >= 2
    assert r["median_e2el_ms"] >= r["median_ttft_ms"] + 5 * 2
    bodies = sse_server.bodies[-16:]
    prompts = [tuple(b["prompt"]) for b in bodies]
    assert len(set(prompts)) == 16 and all(len(p) == 32 for p in prompts)
    assert len({p[:2] for p in prompts}) == 16  # unique prefixes: no prefix-cache hits
    assert all(b["stream"] and b["ignore_eos"] and b["max_tokens"] == 6 and b["stream_options"]["include_usage"]
               for b in bodies)
    assert check_point(r) is r


def test_http_500_counts_as_failed_and_is_invalid(sse_server):
    r = point(sse_server, "fail500")
    assert (r["completed"], r["failed"]) == (0, 12)
    assert "HTTP 500" in next(iter(r["errors"]))
    with pytest.raises(BenchmarkError, match="no request completed"):
        check_point(r)


def test_connection_closed_mid_stream_counts_as_failed(sse_server):
    r = point(sse_server, "cut")
    assert (r["completed"], r["failed"]) == (0, 12)
    assert "before the response ended" in next(iter(r["errors"]))


def test_zero_tokens_is_flagged_invalid(sse_server):
    r = point(sse_server, "empty")
    assert r["completed"] == 12 and r["total_output_tokens"] == 0
    with pytest.raises(BenchmarkError, match="zero output tokens"):
        check_point(r)


def test_latency_includes_client_side_queueing(sse_server):
    # 10 requests arrive within ~50 ms but only one may be in flight and each takes >= 40 ms:
    # they queue in the client, and that wait must show up in their latency.
    r = point(sse_server, "ok;ttft=40;itl=1", osl=2, concurrency=1, num_prompts=10, request_rate=200.0,
              warmup_multiplier=0)
    assert r["completed"] == 10
    assert r["p99_e2el_ms"] > 6 * 40
    assert r["median_ttft_ms"] > 100
    assert r["p99_schedule_delay_ms"] > 200
    assert r["p99_client_lag_ms"] < r["p99_schedule_delay_ms"] / 4  # the wait was the cap, not client lag


def test_poisson_rate_is_roughly_honoured(sse_server):
    r = point(sse_server, "ok;ttft=1;itl=1", osl=2, concurrency=16, num_prompts=40, request_rate=40.0,
              warmup_multiplier=0, seed=3)
    assert r["completed"] == 40 and r["request_rate"] == 40.0
    assert 20.0 < r["achieved_request_rate"] < 80.0
    assert r["duration"] > 0.5  # not a closed-loop burst
    assert r["median_schedule_delay_ms"] < 10


def test_two_processes_share_the_work(sse_server):
    sse_server.max_in_flight = 0
    r = point(sse_server, "ok;ttft=5;itl=1", concurrency=6, num_prompts=18, processes=2)
    assert r["processes"] == 2 and len(r["client_cpu"]) == 2
    assert len(r["client_peak_rss_mb"]) == 2 and all(10 < m < 1000 for m in r["client_peak_rss_mb"])
    assert (r["completed"], r["total_output_tokens"]) == (18, 18 * 6)
    assert sse_server.max_in_flight <= 6


def test_aiohttp_client_gives_the_same_counts(sse_server):
    r = point(sse_server, "ok;ttft=5;itl=2", http="aiohttp")
    assert (r["completed"], r["total_output_tokens"], r["http_client"]) == (12, 72, "aiohttp")
    assert r["median_itl_ms"] >= 2


def test_cli_writes_result_and_exit_code_reflects_validity(sse_server, tmp_path):
    base = [sys.executable, "-m", "srt_agent.loadgen", "--url", sse_server.url, "--isl", "8", "--osl", "3",
            "--concurrency", "2", "--num-prompts", "4", "--warmup-multiplier", "0", "--total-gpus", "8",
            "--decode-gpus", "4"]
    out = tmp_path / "points" / "result.json"
    ok = subprocess.run(base + ["--model", "ok;ttft=1;itl=1", "--out", str(out)], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    r = json.loads(out.read_text())
    assert r["valid"] is True and r["invalid_reason"] is None
    assert r["completed"] == 4 and r["output_tok_s_per_gpu"] == pytest.approx(r["output_throughput"] / 8)
    assert r["output_tok_s_per_decode_gpu"] == pytest.approx(r["output_throughput"] / 4)
    assert not list(out.parent.glob(".*tmp"))  # atomic write left no temporary file
    bad = subprocess.run(base + ["--model", "fail500", "--out", str(out)], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 1 and "INVALID" in bad.stderr
    bad_result = json.loads(out.read_text())
    assert bad_result["failed"] == 4  # the invalid point is still recorded, with the gate's verdict
    assert bad_result["valid"] is False and bad_result["invalid_reason"] in bad.stderr


def test_unreachable_server_fails_every_request():
    r = run_point(LoadConfig(url="http://127.0.0.1:31999", model="m", isl=4, osl=2, concurrency=2, num_prompts=4,
                             warmup_multiplier=0, processes=1))
    assert (r["completed"], r["failed"]) == (0, 4)
    assert "connect failed" in next(iter(r["errors"]))


def test_workers_stop_when_the_parent_dies(sse_server, tmp_path):
    """Killing the CLI (as the agent does on cancel) must not leave workers loading the server."""
    import os
    import signal
    import time

    cli = subprocess.Popen([sys.executable, "-m", "srt_agent.loadgen", "--url", sse_server.url, "--model",
                            "ok;ttft=1;itl=200", "--isl", "4", "--osl", "50", "--concurrency", "2",
                            "--num-prompts", "4", "--warmup-multiplier", "0"])
    deadline = time.monotonic() + 20
    while sse_server.in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sse_server.in_flight == 2
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait()
    deadline = time.monotonic() + 5
    while sse_server.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sse_server.in_flight == 0
