"""The trace-replay phase: the job's trace replayed once per concurrency cap (or once, uncapped),
each replay a load-generator point with its result file, resumable point by point like sa-bench.

The trace file is checked in the preflight (`check_trace_file`): it must exist on the head node
and parse, so a wrong path fails before any worker starts rather than after the model loaded."""

from __future__ import annotations

from pathlib import Path

import anyio

from ..errors import BenchmarkError, ConfigError
from ..loadgen.config import from_job
from ..loadgen.trace_file import load_trace, untimed_without_cap
from ..plan import Plan
from .benchmark_phase import measure_points, tokenizer_dir, write_rollup
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
    results = await measure_points(
        plan, b, run_dir, ledger, status, list(b.concurrencies or [None]),
        key_of=point_name, out_name=lambda c: f"result_{point_name(c)}.json",
        command_of=lambda c, out: from_job(plan, benchmark=b, concurrency=c,
                                           tokenizer=tokenizer_dir(model_path)).command(out),
        what=lambda c: f"trace replay ({point_name(c)})", start_fields={"trace_file": b.trace_file},
        done_fields=lambda r: {"goodput": (r.get("goodput") or {}).get("fraction")})
    write_rollup([{k: v for k, v in r.items() if k != "requests"} for r in results], run_dir / "results")
    return results
