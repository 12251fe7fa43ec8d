"""Server metrics per point: a real scraper against real servers, and the whole agent end to end."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import anyio
import pytest

from srt_agent.agent.metrics_summary import summarize
from srt_agent.agent.server_metrics import Scraper, Target, read_samples, write_samples


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_failed_scrape_is_a_row_never_an_error(tmp_path, sim_model_dir):
    port, dead = _free_port(), _free_port()
    sim = subprocess.Popen([sys.executable, "-m", "srt_agent.sim", "--host", "127.0.0.1", "--port", str(port),
                            "--model-path", str(sim_model_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import httpx

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        scraper = Scraper([Target("decode-0", "decode", f"http://127.0.0.1:{port}/metrics"),
                           Target("frontend-0", "frontend", f"http://127.0.0.1:{dead}/metrics")], 0.1)

        async def run() -> None:
            with anyio.move_on_after(1.0):
                await scraper.run()

        t0 = time.time()
        anyio.run(run)
        t1 = time.time()
    finally:
        sim.terminate()
        sim.wait(10)
    samples = scraper.window(t0, t1)
    ticks = sorted({s.t for s in samples})
    # a tick every 0.1 s for 1 s (fewer on a loaded machine: a late round skips ticks), both targets each
    assert 2 <= len(ticks) <= 11 and len(samples) == 2 * len(ticks)
    assert all(b - a > 0.05 for a, b in zip(ticks, ticks[1:]))  # on the 0.1 s schedule, with jitter
    size = write_samples(tmp_path / "m.csv.gz", samples, t0)
    rows = read_samples(tmp_path / "m.csv.gz")
    assert size == (tmp_path / "m.csv.gz").stat().st_size and len(rows) == len(samples)
    ok = [r for r in rows if r["target"] == "decode-0"]
    bad = [r for r in rows if r["target"] == "frontend-0"]
    assert all(r["ok"] and r["running"] == 0 and r["token_usage"] == 0 for r in ok)
    assert bad and all(not r["ok"] and "Connect" in r["error"] for r in bad)
    summary = summarize(samples, file="m.csv.gz", interval_s=0.1, window=(t0, t1))
    assert summary["roles"]["frontend"]["failed_scrapes"] == len(bad)
    assert "Connect" in summary["roles"]["frontend"]["first_error"]
    assert summary["roles"]["decode"]["failed_scrapes"] == 0
    assert summary["roles"]["decode"]["running"] == {"mean": 0.0, "max": 0.0}


@pytest.mark.slow
def test_each_point_gets_a_metrics_file_and_a_summary_per_role(local_run):
    bench = {"type": "sa-bench", "isl": 64, "osl": 100, "concurrencies": [4], "prompt_multiplier": 4,
             "warmup_multiplier": 1, "metrics_interval_s": 0.2}
    job = local_run.job_file(benchmark=bench, extra={"backend": {"sim": {"decode_step_ms": 10}}})
    res = local_run.apply(job)
    assert res.returncode == 0, res.stderr[-3000:]
    run = local_run.run_dir()
    point = json.loads((run / "results" / "result_isl64_osl100_c4.json").read_text())
    sm = point["server_metrics"]
    assert sm["file"] == "results/metrics_isl64_osl100_c4.csv.gz" and sm["interval_s"] == 0.2
    rows = read_samples(run / sm["file"])
    assert sm["file_bytes"] == (run / sm["file"]).stat().st_size < 20_000
    # only the measured window: 16 requests x 100 tokens at 10 ms a step, 4 at a time: ~4 s
    assert all(0 <= r["t"] <= point["duration"] + 0.01 for r in rows)
    assert {r["target"] for r in rows} == {"prefill-0", "decode-0", "router"}
    assert set(sm["roles"]) == {"prefill", "decode", "router"}
    decode = sm["roles"]["decode"]
    assert decode["failed_scrapes"] == 0 and decode["scrapes"] >= 10
    # the decode worker runs the client's 4 concurrent requests most of the time, never more
    assert decode["running"]["max"] == 4 and 2.5 <= decode["running"]["mean"] <= 4
    assert decode["token_usage"]["max"] > 0 and decode["cache_hit_rate"] == {"mean": 0.0, "max": 0.0}
    # the server's own token rate agrees with the client's output throughput
    assert decode["generation_tokens_per_s"] == pytest.approx(point["output_throughput"], rel=0.3)
    assert decode["gen_throughput"]["max"] > 0
    prefill = sm["roles"]["prefill"]
    assert prefill["prefill_compute_tokens"] > 0 and prefill.get("decode_tokens", 0) == 0
    assert sm["roles"]["router"]["failed_scrapes"] == 0
