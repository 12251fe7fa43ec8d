"""Server metrics per point from a real Dynamo deployment: the agent runs NATS, etcd, a prefill and a
decode `dynamo.mocker` (their system metrics on DYN_SYSTEM_PORT) and two `dynamo.frontend`s behind
nginx (their /metrics on the HTTP port), benchmarks it, and every point's result JSON carries `server_metrics`
for the frontend and both worker roles, with a csv.gz file beside it.

Needs the cached Dynamo venv (`scripts/dynamo-venv`, or SRT_DYNAMO_VENV): skips when it is missing,
fails instead when CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import anyio
import httpx
import pytest
import yaml
from agent_local_support import stop_agent

from srt_agent.agent.server_metrics import Scraper, Target, parse_page
from srt_agent.metrics_file import read_samples

pytestmark = [pytest.mark.dynamo, pytest.mark.slow]

VENV = Path(os.environ.get("SRT_DYNAMO_VENV", "/var/cache/srt-slurm/dynamo-venv-1.6.1"))


@pytest.fixture
def dynamo_run(local_run):
    if not (VENV / "bin" / "python").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Dynamo venv missing at {VENV} (scripts/dynamo-venv builds it)")
        pytest.skip(f"Dynamo venv missing at {VENV}; run scripts/dynamo-venv")
    (local_run.workdir / "srtslurm.yaml").write_text(yaml.safe_dump({
        "executor": "local", "container_runtime": "none", "node_addresses": "loopback",
        "dynamo_venv": str(VENV), "model_paths": {"sim-model": str(local_run.model_dir)}}))
    return local_run


def _job(run, concurrencies: list[int], osl: int, *, disagg: bool = True):
    bench = {"type": "sa-bench", "isl": 64, "osl": osl, "concurrencies": concurrencies, "prompt_multiplier": 4,
             "warmup_multiplier": 1, "metrics_interval_s": 0.2}
    path = run.job_file("dyn-metrics", benchmark=bench, mode="disagg" if disagg else "agg")
    job = yaml.safe_load(path.read_text())
    if disagg:  # 1 prefill + 1 decode mocker; two frontends behind nginx
        job["backend"] = {"engine": "dynamo-mocker", "enable_multiple_frontends": True, "num_additional_frontends": 1}
    else:  # one aggregated mocker, one frontend
        job["backend"] = {"engine": "dynamo-mocker"}
        job["resources"]["agg_workers"] = 1
    job["health"] = {"worker_timeout_s": 120, "frontend_timeout_s": 120, "shutdown_grace_s": 5}
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def test_frontend_and_worker_system_metrics_follow_the_load(dynamo_run):
    res = dynamo_run.apply(_job(dynamo_run, [1, 4], osl=100))
    assert res.returncode == 0, res.stderr[-3000:]
    run = dynamo_run.run_dir()
    plan = json.loads((run / "plan.json").read_text())
    system_ports = {p["name"]: p["env"]["DYN_SYSTEM_PORT"] for p in plan["processes"] if p["kind"] == "worker"}
    assert set(system_ports) == {"prefill-0", "decode-0"} and all(int(v) > 0 for v in system_ports.values())
    fronts = {}
    for c in (1, 4):
        point = json.loads((run / "results" / f"result_isl64_osl100_c{c}.json").read_text())
        sm = point["server_metrics"]
        assert set(sm["roles"]) == {"frontend", "prefill", "decode"}
        assert sm["file"] == f"results/metrics_isl64_osl100_c{c}.csv.gz"
        rows = read_samples(run / sm["file"])
        assert sm["file_bytes"] == (run / sm["file"]).stat().st_size < 20_000
        assert {r["target"] for r in rows} == {"frontend-0", "frontend-1", "prefill-0", "decode-0"} and all(r["ok"] for r in rows)
        assert all(0 <= r["t"] <= point["duration"] + 0.01 for r in rows)
        fe = sm["roles"]["frontend"]
        assert fe["targets"] == 2 and fe["failed_scrapes"] == 0 and fe["scrapes"] >= 16
        # requests in flight at the frontends (summed) are the client's concurrency, most of the window
        assert fe["frontend_active"]["max"] == c and 0.7 * c <= fe["frontend_active"]["mean"] <= c
        assert fe["frontend_inflight"]["max"] == c
        # the frontend's token rate and latencies agree with what the client measured
        assert fe["frontend_output_tokens_per_s"] == pytest.approx(point["output_throughput"], rel=0.3)
        assert 0 < fe["frontend_requests"] <= point["completed"]
        ttft, itl = fe["frontend_ttft_ms"], fe["frontend_itl_ms"]
        assert 1 <= ttft["count"] <= point["completed"] and 0 < ttft["mean"] <= point["mean_ttft_ms"] * 1.2
        assert ttft["p50"] <= ttft["p90"] <= ttft["p99"]
        assert itl["count"] > 50 and itl["mean"] == pytest.approx(point["mean_itl_ms"], rel=0.4)
        assert fe["frontend_request_duration_ms"]["count"] >= 1
        # each worker's Dynamo system page: its generate endpoint busy with the same requests
        decode, prefill = sm["roles"]["decode"], sm["roles"]["prefill"]
        assert decode["failed_scrapes"] == 0 and prefill["failed_scrapes"] == 0
        assert decode["worker_inflight"]["max"] == c and decode["worker_requests"] > 0
        assert prefill["worker_requests"] > 0
        # the engine metrics the mocker passes through (sglang:* on the same page)
        assert decode["running"]["max"] >= 1 and decode["itl_ms"]["count"] > 50
        assert "worker_inflight" in {k for r in rows if r["target"] == "prefill-0" for k, v in r.items() if v is not None}
        fronts[c] = fe
    assert fronts[4]["frontend_output_tokens_per_s"] > 2 * fronts[1]["frontend_output_tokens_per_s"]
    assert fronts[4]["frontend_active"]["mean"] > 2 * fronts[1]["frontend_active"]["mean"]


def test_a_scrape_that_times_out_is_recorded_and_the_point_still_counts(dynamo_run):
    """The (aggregated) mocker is frozen (SIGSTOP) for 1.5 s inside the measured window (8 requests
    of 200 tokens, 2 at a time: ~6 s): its scrapes time out and are recorded; the requests wait, the
    point is measured, the job succeeds."""
    proc = dynamo_run.start(_job(dynamo_run, [2], osl=200, disagg=False))
    try:
        dynamo_run.wait_status(lambda s: s.get("benchmark", {}).get("current") == 2, timeout=120)
        run = dynamo_run.run_dir()
        pgid = json.loads((run / "pids.json").read_text())["processes"]["agg-0"]["pgid"]
        worker = next(p for p in json.loads((run / "plan.json").read_text())["processes"] if p["name"] == "agg-0")
        url = f"http://{worker['address']}:{worker['env']['DYN_SYSTEM_PORT']}/metrics"
        # a page that is not Prometheus text (the frontend's JSON /health) is a failed scrape too
        front = next(p for p in json.loads((run / "plan.json").read_text())["processes"] if p["kind"] == "frontend")
        base = f"http://{front['address']}:{front['port']}"
        scraper = Scraper([Target("frontend-0", "frontend", f"{base}/metrics"),
                           Target("health", "frontend", f"{base}/health")], 0.1)

        async def scrape() -> None:
            with anyio.move_on_after(0.35):
                await scraper.run()

        anyio.run(scrape)
        health = [x for x in scraper.samples if x.target.name == "health"]
        page = [x for x in scraper.samples if x.target.name == "frontend-0"]
        assert health and all(x.values is None and "not Prometheus text" in x.error for x in health)
        assert page and all(x.values is not None and "frontend_active" in x.values for x in page)

        def seen() -> float:
            return parse_page(httpx.get(url, timeout=5).text).get("worker_requests_total", 0.0)

        # once the worker has seen the 2 warmup requests and a measured one, the window is open
        first, deadline = seen(), time.monotonic() + 60
        while seen() < first + 3:
            assert time.monotonic() < deadline, "the measured requests never reached the worker"
            time.sleep(0.1)
        os.killpg(pgid, signal.SIGSTOP)
        try:
            time.sleep(1.5)
        finally:
            os.killpg(pgid, signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-3000:]
    finally:
        stop_agent(proc)
    run = dynamo_run.run_dir()
    point = json.loads((run / "results" / "result_isl64_osl200_c2.json").read_text())
    assert point["completed"] == 8 and point["failed"] == 0
    agg = point["server_metrics"]["roles"]["agg"]
    assert agg["failed_scrapes"] >= 1 and agg["first_error"].startswith("agg-0: ReadTimeout")
    assert agg["scrapes"] > agg["failed_scrapes"]  # before and after the freeze it answered
    assert agg["worker_inflight"]["max"] == 2
    assert point["server_metrics"]["roles"]["frontend"]["failed_scrapes"] == 0
    rows = read_samples(run / point["server_metrics"]["file"])
    bad = [r for r in rows if not r["ok"]]
    assert bad and {r["target"] for r in bad} == {"agg-0"} and all("Timeout" in r["error"] for r in bad)
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded"
