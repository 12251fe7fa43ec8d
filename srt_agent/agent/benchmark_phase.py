"""The sa-bench phase: one load-generator run per concurrency point, resumable point by point."""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from ..atomic import write_json_atomic, write_text_atomic
from ..errors import BenchmarkError
from ..loadgen.config import LoadConfig, from_job
from ..loadgen.validity import recorded_verdict
from ..plan import Plan
from .ledger import Ledger
from .status import StatusWriter
from .procguard import guarded
from ..client_plan import client_command  # several client nodes: the multi-node coordinator
from .metrics_summary import summarize
from .server_metrics import Scraper, metric_targets, write_samples

ROLLUP_KEYS = ["max_concurrency", "completed", "failed", "duration", "request_throughput", "output_throughput",
               "total_token_throughput", "mean_ttft_ms", "median_ttft_ms", "p99_ttft_ms", "mean_tpot_ms",
               "median_tpot_ms", "p99_tpot_ms", "mean_itl_ms", "p99_itl_ms", "mean_e2el_ms", "p99_e2el_ms"]


def point_key(isl: int, osl: int, concurrency: int) -> str:
    """Ledger key of a point: its whole shape, so a forced resume never reuses another config's."""
    return f"isl{isl}_osl{osl}_c{concurrency}"


def tokenizer_dir(model_path: str) -> str | None:
    p = Path(model_path)
    return str(p) if (p / "tokenizer.json").is_file() else None


def point_load(plan: Plan, job, concurrency: int, *, model_path: str) -> LoadConfig:
    """The load of one sweep point: the one LoadConfig the job's benchmark section gives."""
    return from_job(plan, benchmark=job.benchmark, concurrency=concurrency, tokenizer=tokenizer_dir(model_path))


async def run_loadgen(cmd: list[str], log: Path) -> int:
    with open(log, "ab") as f:
        f.write((shlex.join(cmd) + "\n").encode())

        proc = await anyio.open_process(guarded(cmd), stdout=f, stderr=f)
        try:
            return await proc.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):  # it may be gone already (scancel signals it too)
                try:
                    proc.terminate()
                    with anyio.move_on_after(5):
                        await proc.wait()
                    if proc.returncode is None:
                        proc.kill()
                except ProcessLookupError:
                    pass
            raise


async def run_benchmark(plan: Plan, job, run_dir: Path, ledger: Ledger, status: StatusWriter,
                        model_path: str) -> list[dict]:
    b = job.benchmark
    results = await measure_points(
        plan, b, run_dir, ledger, status, list(b.concurrencies or []),
        key_of=lambda c: point_key(b.isl, b.osl, c), out_name=lambda c: f"result_isl{b.isl}_osl{b.osl}_c{c}.json",
        command_of=lambda c, out: client_command(plan, job, point_load(plan, job, c, model_path=model_path).command(out)),
        what=lambda c: f"concurrency {c}")
    write_rollup(results, run_dir / "results")
    return results


async def measure_points(plan: Plan, b, run_dir: Path, ledger: Ledger, status: StatusWriter, points: list, *,
                         key_of: Callable[[Any], str], out_name: Callable[[Any], str],
                         command_of: Callable[[Any, Path], list[str]], what: Callable[[Any], str],
                         start_fields: dict | None = None,
                         done_fields: Callable[[dict], dict] | None = None) -> list[dict]:
    """Each point once, in order (sa-bench's concurrencies, a trace replay's caps): one the ledger
    holds is read back (a resumed run), the others run the load generator with the server-metrics
    scrape around it, are judged by the load generator's verdict and marked in the ledger."""
    results_dir = run_dir / "results"
    results_dir.mkdir(exist_ok=True)
    results: list[dict] = []
    status.benchmark(points_total=len(points), points_done=sum(1 for c in points if ledger.point_done(key_of(c))))
    for c in points:
        key = key_of(c)
        done = ledger.point_done(key)
        if done and (run_dir / done).is_file():
            results.append(json.loads((run_dir / done).read_text()))
            status.event("point_skipped", concurrency=c, reason="already measured", file=done)
            continue
        out = results_dir / out_name(c)
        status.benchmark(current=c)
        status.event("point_start", concurrency=c, **(start_fields or {}))
        out.unlink(missing_ok=True)  # never mistake an unfinished attempt's file for this one's
        cmd = command_of(c, out)
        scraper = _start_scraper(plan, b)
        async with anyio.create_task_group() as scrape_tg:
            if scraper is not None:
                scrape_tg.start_soon(scraper.run)
            rc = await run_loadgen(cmd, run_dir / "logs" / "benchmark.log")
            scrape_tg.cancel_scope.cancel()
        if not out.is_file():
            raise BenchmarkError(f"{what(c)}: the load generator exited with code {rc} and wrote no result "
                                 f"(see logs/benchmark.log)")
        result = recorded_verdict(json.loads(out.read_text()), f"results/{out.name}")  # judged by the loadgen
        if scraper is not None:
            _attach_server_metrics(scraper, result, out, results_dir, status)
        rel = str(out.relative_to(run_dir))
        ledger.mark_point(key, rel)
        results.append(result)
        status.event("point_done", concurrency=c, file=rel, output_throughput=result.get("output_throughput"),
                     **(done_fields(result) if done_fields else {}))
        status.benchmark(points_done=sum(1 for p in points if ledger.point_done(key_of(p))), current=None,
                         results=[{k: r.get(k) for k in ROLLUP_KEYS[:7]} for r in results])
    return results


def _start_scraper(plan: Plan, b):

    targets = metric_targets(plan)
    if not b.metrics_interval_s or not targets:
        return None
    return Scraper(targets, b.metrics_interval_s)


def _attach_server_metrics(scraper, result: dict, out: Path, results_dir: Path, status: StatusWriter) -> None:
    """The point's metrics file and its `server_metrics` summary; any trouble is an event, never fatal."""

    try:
        start, end = result["measured_start_unix"], result["measured_end_unix"]
        samples = scraper.window(start, end)
        path = results_dir / out.name.replace("result_", "metrics_").replace(".json", ".csv.gz")
        size = write_samples(path, samples, start)
        result["server_metrics"] = summarize(samples, file=f"results/{path.name}", interval_s=scraper.interval_s,
                                             window=(start, end))
        result["server_metrics"]["file_bytes"] = size
        write_json_atomic(out, result)
    except Exception as exc:  # the measured result is already safe on disk
        status.event("server_metrics_failed", file=out.name, error=f"{type(exc).__name__}: {exc}")


def write_rollup(results: list[dict], out_dir: Path) -> None:
    rows = sorted(results, key=lambda r: r.get("max_concurrency") or 0)
    write_json_atomic(out_dir / "rollup.json", {"points": rows})
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in rows for k, v in r.items() if isinstance(v, (int, float, str)) or v is None))
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if isinstance(r.get(k), float) and math.isnan(r[k]) else r.get(k)) for k in keys})
    write_text_atomic(out_dir / "rollup.csv", buf.getvalue())
