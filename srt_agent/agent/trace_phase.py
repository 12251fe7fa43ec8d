"""The trace-replay phase: the job's trace replayed once per concurrency cap (or once, uncapped),
each replay a load-generator point with its result file, resumable point by point like sa-bench.

The trace file is checked in the preflight (`check_trace_file`): it must exist on the head node
and parse, so a wrong path fails before any worker starts rather than after the model loaded."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from ..errors import BenchmarkError, ConfigError
from ..loadgen.config import from_job
from ..loadgen.trace_file import load_trace, untimed_without_cap
from ..loadgen.validity import recorded_verdict
from ..plan import Plan
from .benchmark_phase import ROLLUP_KEYS, _attach_server_metrics, _start_scraper, run_loadgen, tokenizer_dir, write_rollup
from .ledger import Ledger
from .status import StatusWriter


def point_name(concurrency: int | None) -> str:
    return f"trace_c{concurrency}" if concurrency else "trace_uncapped"


async def check_trace_file(job, job_file: str) -> None:
    """Preflight: the trace exists and every line parses (names the trace's file:line otherwise)."""
    if job.benchmark.type != "trace-replay":
        return
    hint = "give the absolute path of a Mooncake-format JSONL trace the head node can read"
    try:
        trace = await anyio.to_thread.run_sync(load_trace, job.benchmark.trace_file)
    except BenchmarkError as exc:
        raise ConfigError(f"preflight: {exc}", file=job_file, key="benchmark.trace_file", hint=hint) from None
    problem = untimed_without_cap(trace, job.benchmark.concurrencies)
    if problem is not None:
        raise ConfigError(f"preflight: {problem}", file=job_file, key="benchmark.concurrencies",
                          hint="add benchmark.concurrencies: [N]")
    print(f"[srt-agent] trace {trace.path}: {len(trace.requests)} requests over {trace.duration_s:.1f} s", flush=True)


async def run_trace_benchmark(plan: Plan, job, run_dir: Path, ledger: Ledger, status: StatusWriter,
                              model_path: str) -> list[dict]:
    b = job.benchmark
    points: list[int | None] = list(b.concurrencies or [None])
    results_dir = run_dir / "results"
    results_dir.mkdir(exist_ok=True)
    results: list[dict] = []
    status.benchmark(points_total=len(points), points_done=sum(1 for c in points if ledger.point_done(point_name(c))))
    for c in points:
        key = point_name(c)
        done = ledger.point_done(key)
        if done and (run_dir / done).is_file():
            results.append(json.loads((run_dir / done).read_text()))
            status.event("point_skipped", concurrency=c, reason="already measured", file=done)
            continue
        out = results_dir / f"result_{key}.json"
        status.benchmark(current=c)
        status.event("point_start", concurrency=c, trace_file=b.trace_file)
        out.unlink(missing_ok=True)
        cmd = from_job(plan, benchmark=b, concurrency=c, tokenizer=tokenizer_dir(model_path)).command(out)
        scraper = _start_scraper(plan, b)
        async with anyio.create_task_group() as scrape_tg:
            if scraper is not None:
                scrape_tg.start_soon(scraper.run)
            rc = await run_loadgen(cmd, run_dir / "logs" / "benchmark.log")
            scrape_tg.cancel_scope.cancel()
        if not out.is_file():
            raise BenchmarkError(f"trace replay ({key}): the load generator exited with code {rc} and wrote no "
                                 "result (see logs/benchmark.log)")
        result = recorded_verdict(json.loads(out.read_text()), f"results/{out.name}")
        if scraper is not None:
            _attach_server_metrics(scraper, result, out, results_dir, status)
        rel = str(out.relative_to(run_dir))
        ledger.mark_point(key, rel)
        results.append(result)
        status.event("point_done", concurrency=c, file=rel, output_throughput=result.get("output_throughput"),
                     goodput=(result.get("goodput") or {}).get("fraction"))
        status.benchmark(points_done=sum(1 for p in points if ledger.point_done(point_name(p))), current=None,
                         results=[{k: r.get(k) for k in ROLLUP_KEYS[:7]} for r in results])
    write_rollup([{k: v for k, v in r.items() if k != "requests"} for r in results], results_dir)
    return results
