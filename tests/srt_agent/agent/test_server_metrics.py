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
from srt_agent.agent.server_metrics import Sample, Scraper, Target, write_samples
from srt_agent.metrics_file import read_samples


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


def test_window_quantiles_interpolate_in_the_buckets_like_prometheus():
    from srt_agent.agent.metrics_summary import quantile

    inf = float("inf")
    buckets = {0.1: 10.0, 0.2: 30.0, inf: 40.0}
    assert quantile(0.1, buckets) == pytest.approx(0.04)  # inside the first bucket, from 0
    assert quantile(0.5, buckets) == pytest.approx(0.15)
    assert quantile(0.99, buckets) == 0.2  # in +Inf: the highest finite bound
    assert quantile(0.5, {0.1: 0.0, inf: 0.0}) is None and quantile(0.5, {0.1: 3.0}) is None


def test_histogram_summary_counts_only_what_the_window_observed():
    """Two frontends' TTFT histograms: the summary sums the bucket increase of each over the window
    (observations before the window's first snapshot are not counted)."""
    inf = float("inf")
    fronts = [Target(f"frontend-{i}", "frontend", "http://127.0.0.1:1/metrics") for i in range(2)]

    def snap(t, target, n_fast, n_slow):  # n_fast observations <= 10 ms, n_slow in (10, 100] ms
        total = n_fast + n_slow
        return Sample(t, target, {"frontend_ttft_sum": 0.005 * n_fast + 0.05 * n_slow, "frontend_ttft_count": total},
                      hist={"frontend_ttft": {0.01: n_fast, 0.1: total, inf: total}})

    samples = [snap(0.0, fronts[0], 100, 0), snap(1.0, fronts[0], 110, 10),
               snap(0.0, fronts[1], 0, 50), snap(1.0, fronts[1], 10, 60)]
    st = summarize(samples, file=None, interval_s=1.0, window=(0.0, 1.0))["roles"]["frontend"]["frontend_ttft_ms"]
    assert st["count"] == 40  # 20 fast + 20 slow inside the window
    assert st["mean"] == pytest.approx(1000 * (20 * 0.005 + 20 * 0.05) / 40)
    assert st["p50"] == pytest.approx(10.0) and st["p90"] == pytest.approx(10 + 90 * 0.8)


def test_bucket_snapshots_per_target_stay_bounded():
    from srt_agent.agent.server_metrics import HIST_KEEP

    scraper = Scraper([], 1.0)
    target = Target("frontend-0", "frontend", "http://127.0.0.1:1/metrics")
    samples = [Sample(float(t), target, {}, hist={"frontend_ttft": {float("inf"): float(t)}}) for t in range(1000)]
    for s in samples:
        scraper._keep_hist(target.name, s)
    kept = [s for s in samples if s.hist is not None]
    assert len(kept) <= HIST_KEEP and kept[0] is samples[0] and kept[-1] is samples[-1]
