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
PLOTS = ("pareto", "latency", "ready", "server", "window")


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


def add_server_metrics(fx: rf.Fixture) -> None:
    """What benchmark_phase adds to each point: a metrics file and the summary, from real samples."""
    for path in sorted((fx.run_dir / "results").glob("result_*.json")):
        result = json.loads(path.read_text())
        c = result["max_concurrency"]
        targets = [Target("prefill-0", "prefill", ""), Target("decode-0", "decode", "")]
        samples = []
        for k in range(20):
            for t in targets:
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


def test_report_html_loads_in_chromium_with_every_plot_drawn(capsys, tmp_path):
    logs = tmp_path / "logs"
    a = rf.succeeded_run(logs, job_id="2001", timestamp="20260110_120000")
    b = rf.succeeded_run(logs, job_id="2002", timestamp="20260110_130000", speed=2.0)
    add_server_metrics(a)
    out = tmp_path / "report"
    assert main(["report", "2001", "2002", "--logs-dir", str(logs), "-o", str(out)]) == 0
    assert "html: " in capsys.readouterr().out
    page = out / "report.html"
    text = page.read_text()
    # self-contained: plotly inlined, nothing fetched from anywhere
    assert not re.search(r"<(script|img)[^>]+src=|<link[^>]+href=", text)
    assert text.count("class='srt-plot'") == len(PLOTS)

    res = browse(page, tmp_path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert console_errors(res.stderr) == [], console_errors(res.stderr)
    dom = res.stdout
    for name in PLOTS:
        start = dom.index(f'data-plot="{name}"')
        block = dom[start: dom.find('data-plot="', start + 10) if name != PLOTS[-1] else len(dom)]
        assert 'class="main-svg"' in block, f"{name}: plotly drew nothing"
        assert re.search(r'class="(trace|point|bars)', block), f"{name}: no trace drawn"
    assert a.run_dir.name.split("_")[0] in dom and "time to ready" in dom

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report-html.png"
    shot.unlink(missing_ok=True)
    res = browse(page, tmp_path, f"--screenshot={shot}", "--window-size=1400,3600", "--hide-scrollbars")
    assert res.returncode == 0 and shot.stat().st_size > 20_000, res.stderr[-2000:]


def test_the_console_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    res = browse(page, tmp_path, "--dump-dom")
    assert console_errors(res.stderr), res.stderr[-2000:]
