"""`srtctl report` writes one self-contained HTML page; real headless Chromium loads and draws it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import run_fixtures as rf

from launcher.cli import main
from srt_agent.agent.metrics_summary import summarize
from srt_agent.agent.server_metrics import Sample, Target, write_samples

pytestmark = pytest.mark.usefixtures("no_slurm")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SRT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
PLOTS = ("pareto", "latency", "ready", "server", "frontdoor", "window")
TTFT_BOUNDS = (0.01, 0.05, 0.1, 0.5, float("inf"))


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (scripts/install-system-deps)")
        pytest.skip("chromium is not installed")
    return path


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """Debian's Chromium, headless, offline-minded flags, a fresh profile; console on stderr."""
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=15000", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]


def front_values(role: str, c: int, k: int) -> tuple[dict, dict | None]:
    """One front-door scrape at tick k of a point at concurrency c: two frontends share the load
    (in flight c/2 each, one queued from c=16, TTFT 5*c ms, ITL 2 ms); the router holds c."""
    if role == "router":
        return {"router_active": c, "router_requests_total": 2.0 * c * k}, None
    n = 0.5 * c * k  # requests finished so far by this frontend
    ttft = 0.005 * c
    return ({"frontend_inflight": c / 2, "frontend_active": c / 2, "frontend_queued": 0.5 * (c >= 16),
             "frontend_stage_requests": 0, "frontend_requests_total": n,
             "frontend_output_tokens_total": 32 * n,
             "frontend_ttft_sum": n * ttft, "frontend_ttft_count": n, "frontend_itl_sum": 31 * n * 0.002,
             "frontend_itl_count": 31 * n},
            {"frontend_ttft": {le: (n if ttft <= le else 0.0) for le in TTFT_BOUNDS},
             "frontend_itl": {le: 31 * n for le in TTFT_BOUNDS}})


def add_server_metrics(fx: rf.Fixture, front: str | None = None) -> None:
    """What benchmark_phase adds to each point: a metrics file and the summary, from real samples;
    front="frontend": two Dynamo frontends as well, front="router": the sglang router."""
    for path in sorted((fx.run_dir / "results").glob("result_*.json")):
        result = json.loads(path.read_text())
        c = result["max_concurrency"]
        targets = [Target("prefill-0", "prefill", ""), Target("decode-0", "decode", "")]
        if front == "frontend":
            targets += [Target("frontend-0", "frontend", ""), Target("frontend-1", "frontend", "")]
        elif front == "router":
            targets.append(Target("router", "router", ""))
        samples = []
        for k in range(20):
            for t in targets:
                if t.role in ("frontend", "router"):
                    values, hist = front_values(t.role, c, k)
                    samples.append(Sample(1000.0 + k, t, values, hist=hist))
                    continue
                dec = t.role == "decode"
                samples.append(Sample(1000.0 + k, t, {
                    "running": min(c, k + 1) if dec else 0, "queued": 0, "token_usage": 0.01 * c * dec,
                    "gen_throughput": 100.0 * c * dec, "generation_tokens_total": 100.0 * c * k * dec}))
        metrics = path.with_name(path.name.replace("result_", "metrics_").replace(".json", ".csv.gz"))
        write_samples(metrics, samples, 1000.0)
        result["server_metrics"] = summarize(samples, file=f"results/{metrics.name}", interval_s=1.0,
                                             window=(1000.0, 1019.0))
        path.write_text(json.dumps(result))
    (fx.run_dir / "results" / "rollup.json").unlink()


def embedded(page: str, name: str) -> tuple[list[dict], dict]:
    """The traces and layout plotly was given for the figure `name` (the page's own data)."""
    m = re.search(r'Plotly\.newPlot\(\s*"plot-' + re.escape(name) + r'",\s*', page)
    assert m, f"no plot-{name} in the page"
    dec = json.JSONDecoder()
    data, end = dec.raw_decode(page, m.end())
    layout, _ = dec.raw_decode(page, page.index("{", end))
    return data, layout


def only(traces: list[dict], suffix: str) -> dict:
    found = [t for t in traces if t["name"].endswith(suffix)]
    assert len(found) == 1, [t["name"] for t in traces]
    return found[0]


def test_report_html_loads_in_chromium_with_every_plot_drawn(capsys, tmp_path):
    logs = tmp_path / "logs"
    a = rf.succeeded_run(logs, job_id="2001", timestamp="20260110_120000")
    b = rf.succeeded_run(logs, job=rf.DISAGG_NGINX, job_id="2002", timestamp="20260110_130000", speed=2.0)
    rf.succeeded_run(logs, job_id="2003", timestamp="20260110_140000", speed=1.5)  # no server metrics
    add_server_metrics(a, front="router")
    add_server_metrics(b, front="frontend")
    out = tmp_path / "report"
    assert main(["report", "2001", "2002", "2003", "--logs-dir", str(logs), "-o", str(out)]) == 0
    assert "html: " in capsys.readouterr().out
    page = out / "report.html"
    text = page.read_text()
    # self-contained: plotly inlined, nothing fetched from anywhere
    assert not re.search(r"<(script|img)[^>]+src=|<link[^>]+href=", text)
    assert text.count("class='srt-plot'") == len(PLOTS)

    # the front door per point: b's two frontends together, a's router, c nowhere; values as scraped
    traces, _ = embedded(text, "frontdoor")
    conc = [1, 4, 16, 64]
    assert {t["name"].split(" (job ")[0] for t in traces} == {"fixture-disagg", "fixture-nginx"}
    files = sorted((b.run_dir / "results").glob("result_*.json"), key=lambda p: int(p.stem.split("_c")[-1]))
    summaries = [json.loads(p.read_text())["server_metrics"]["roles"]["frontend"] for p in files]
    for suffix, want in ((" frontend in flight", conc), (" frontend queued", [0, 0, 1, 1]),
                         (" frontend TTFT", [5 * c for c in conc]), (" frontend requests/s", conc),
                         (" frontend output tok/s", [32 * c for c in conc]), (" router active", conc),
                         (" router requests/s", [2 * c for c in conc])):
        t = only(traces, suffix)
        run = "fixture-disagg (job 2001" if "router" in suffix else "fixture-nginx (job 2002"
        assert t["name"].startswith(run)
        assert t["x"] == conc and t["y"] == pytest.approx(want), (suffix, t["y"])
    ttft, p99 = only(traces, " frontend TTFT"), only(traces, " frontend TTFT p99")
    assert p99["y"] == [s["frontend_ttft_ms"]["p99"] for s in summaries] and p99["line"]["dash"] == "dot"
    assert ttft["customdata"][2] == (f"{summaries[2]['frontend_ttft_ms']['count']} observations; "
                                     f"p50 {summaries[2]['frontend_ttft_ms']['p50']}, "
                                     f"p90 {summaries[2]['frontend_ttft_ms']['p90']}, p99 {p99['y'][2]} ms")
    assert "frontend TTFT mean %{y" in ttft["hovertemplate"]
    assert only(traces, " frontend ITL")["y"] == pytest.approx([2.0] * 4)
    # the window figure gets the front door's row: each frontend's in-flight at b's c=64 point
    wtraces, wlayout = embedded(text, "window")
    assert "front door: requests in flight" in [a["text"] for a in wlayout["annotations"]]
    inflight = [t for t in wtraces if "front door: requests in flight" in t["hovertemplate"]]
    assert only(inflight, "c=64 frontend-0")["y"] == [32] * 20
    assert only(inflight, "c=64 router")["y"] == [64] * 20
    assert only([t for t in wtraces if "queued" in t["hovertemplate"]], "c=64 frontend-1")["y"] == [0.5] * 20

    res = browse(page, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert console_errors(res.stderr) == [], console_errors(res.stderr)
    dom = res.stdout
    for name in PLOTS:
        start = dom.index(f'data-plot="{name}"')
        block = dom[start: dom.find('data-plot="', start + 10) if name != PLOTS[-1] else len(dom)]
        assert 'class="main-svg"' in block, f"{name}: plotly drew nothing"
        assert re.search(r'class="(trace|point|bars)', block), f"{name}: no trace drawn"
        if name == "frontdoor":  # every value a marker
            markers = sum(len(t["x"]) for t in traces)
            drawn = len(re.findall(r'class="point[ "]', block))
            assert drawn == markers, (drawn, markers)
    assert a.run_dir.name.split("_")[0] in dom and "time to ready" in dom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-html.png"
    shot.unlink(missing_ok=True)
    res = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,4800", "--hide-scrollbars")
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]


def test_the_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    res = browse(page, tmp_path, "--dump-dom")
    assert console_errors(res.stderr), res.stderr[-2000:]


def test_the_front_door_figure_is_left_out_without_frontend_or_router_metrics(tmp_path):
    from srt_agent.report import load_run
    from srt_agent.report_html import write_html

    fx = rf.succeeded_run(tmp_path / "logs", job_id="2004", timestamp="20260110_150000")
    add_server_metrics(fx)
    text = write_html([load_run(fx.run_dir)], tmp_path / "report.html").read_text()
    assert "data-plot='server'" in text and "data-plot='frontdoor'" not in text
    _, layout = embedded(text, "window")
    assert not any(a["text"].startswith("front door") for a in layout["annotations"])
