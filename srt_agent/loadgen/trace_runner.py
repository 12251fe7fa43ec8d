"""run_trace: one trace-replay point (the whole trace, at one concurrency cap or none) over
several worker processes; its result has the keys of a sa-bench point (metrics.summarize) plus
the trace's own (`trace_*`, `peak_in_flight`, `goodput`, and one record per request)."""

from __future__ import annotations

import math
import statistics
import time

from ..errors import BenchmarkError
from .config import LoadConfig, split_url
from .records import RequestRecord
from .runner import START_DELAY_S, WARMUP_INDEX_BASE, _recv_all, _share, measured_result, warm_up, worker_processes
from .sizing import auto_processes, usable_cores
from .trace import TraceWorkload
from .trace_file import Trace, TraceRequest, load_trace, untimed_without_cap
from .trace_worker import TraceWorkerSpec

UNCAPPED_SLOTS = 16  # connections a worker opens up front without a cap (more are opened when needed)
WARMUP_OUTPUT_TOKENS = 16


def trace_processes(config: LoadConfig, trace: Trace) -> int:
    n = len(trace.requests)
    cap = config.concurrency or None
    if config.processes is not None:
        return max(1, min(config.processes, cap or n, n))
    osl = max(1, round(statistics.fmean(r.output_length for r in trace.requests)))
    return auto_processes(min(cap or n, n), osl, config.expected_itl_ms, usable_cores(), trace.mean_rate())


def peak_in_flight(records: list[RequestRecord]) -> int:
    events = sorted([(r.sent, 1) for r in records if r.sent] + [(r.end, -1) for r in records if r.sent and r.end],
                    key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def goodput(records: list[RequestRecord], duration: float, ttft_ms: float | None, itl_ms: float | None) -> dict | None:
    """Requests that completed within both thresholds (TTFT, and the request's mean gap between
    tokens, its TPOT): their count, fraction of all requests and rate. None without thresholds."""
    if ttft_ms is None and itl_ms is None:
        return None

    def meets(r: RequestRecord) -> bool:
        if not r.ok or r.ttft is None:
            return False
        if ttft_ms is not None and r.ttft * 1000.0 > ttft_ms:
            return False
        return itl_ms is None or r.tpot is None or r.tpot * 1000.0 <= itl_ms

    good = sum(1 for r in records if meets(r))
    return {"ttft_threshold_ms": ttft_ms, "itl_threshold_ms": itl_ms, "requests": good,
            "fraction": good / len(records) if records else 0.0,
            "request_goodput": good / duration if duration > 0 else 0.0}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


def request_rows(records: list[RequestRecord], trace: Trace, start: float) -> list[dict]:
    rows = []
    for r in sorted(records, key=lambda r: r.index):
        t = trace.requests[r.index]
        rows.append({"index": r.index, "timestamp_ms": t.timestamp_ms, "hash_blocks": len(t.hash_ids),
                     "input_tokens": r.input_tokens, "requested_output_tokens": r.requested_output_tokens,
                     "output_tokens": r.output_tokens, "sent_ms": _ms(r.sent - start if r.sent else None),
                     "send_delay_ms": _ms(r.sent - r.scheduled if r.sent else None), "ttft_ms": _ms(r.ttft),
                     "e2el_ms": _ms(r.e2el), "ok": r.ok, "error": r.error})
    return rows


def run_trace(config: LoadConfig) -> dict:
    """Replay config.trace_file against config.url: every request at its timestamp after the
    start, at most config.concurrency in flight (0: no cap). Blocking, like run_point."""
    config.validate()
    host, port, path = split_url(config.url, config.endpoint)
    trace = load_trace(config.trace_file)
    n, cap = len(trace.requests), config.concurrency or None
    problem = untimed_without_cap(trace, cap)
    if problem is not None:
        raise BenchmarkError(problem.replace("benchmark.concurrencies", "a concurrency (--concurrency)"))
    k = trace_processes(config, trace)
    measured = {g: r for g, r in enumerate(trace.requests)}
    n_warm = 0 if config.warmup_multiplier <= 0 else max(1, math.ceil(config.warmup_multiplier * (cap or 1)))
    median_in = round(statistics.median(r.input_length for r in trace.requests))
    warm = {WARMUP_INDEX_BASE + i: TraceRequest(0.0, median_in, WARMUP_OUTPUT_TOKENS) for i in range(n_warm)}
    workload = TraceWorkload.build({**measured, **warm}, seed=config.seed, tokenizer=config.tokenizer)
    parts = [list(range(i, n, k)) for i in range(k)]  # round robin over the time-ordered trace
    warm_parts = [list(warm)[i::k] for i in range(k)]
    slots = _share(cap, k) if cap else [min(UNCAPPED_SLOTS, max(1, len(p))) for p in parts]
    specs = [TraceWorkerSpec(
        worker_id=i, host=host, port=port, path=path, model=config.model, slots=slots[i],
        warmup=warm_parts[i], measured=parts[i], workload=workload.subset(parts[i] + warm_parts[i]),
        seed=config.seed, timeout=config.request_timeout, http=config.http, use_uvloop=config.use_uvloop,
        extra_body=dict(config.extra_body), due={g: _offset(measured[g]) for g in parts[i]},
        capped=cap is not None) for i in range(k)]
    with worker_processes(specs) as (pipes, procs):
        warmed = warm_up(pipes, procs, timeout=config.phase_timeout)
        start = time.monotonic() + START_DELAY_S
        for p in pipes:
            p.send(("measure", start))
        timeout = None if config.phase_timeout is None else config.phase_timeout + trace.duration_s
        done = _recv_all(pipes, procs, "done", timeout=timeout)
    results = [msg[1] for msg in done]
    records = [r for res in results for r in res.records]
    rate = trace.mean_rate()
    out = measured_result(config, results, warmed, start=start, max_concurrency=cap, rate=rate,
                          isl=round(statistics.fmean(r.input_length for r in trace.requests)),  # the trace's means
                          osl=round(statistics.fmean(r.output_length for r in trace.requests)),
                          num_prompts=n, warmup_prompts=n_warm, random_range_ratio=None, prompt_kind=workload.kind,
                          processes=k)
    out.update({
        "benchmark": "trace-replay",
        "trace_file": trace.path,
        "trace_requests": n,
        "trace_duration_s": trace.duration_s,
        "trace_request_rate": None if math.isinf(rate) else rate,
        "trace_shared_blocks": _shared_blocks(trace),
        "peak_in_flight": peak_in_flight(records),
        "goodput": goodput(records, out["duration"], config.ttft_threshold_ms, config.itl_threshold_ms),
        "requests": request_rows(records, trace, start),
    })
    return out


def _offset(r: TraceRequest) -> float | None:
    return None if r.timestamp_ms is None else r.timestamp_ms / 1000.0


def _shared_blocks(trace: Trace) -> int:
    """Block ids that more than one request of the trace names (the prefix reuse it carries)."""
    seen: dict[int, int] = {}
    for r in trace.requests:
        for h in set(r.hash_ids):
            seen[h] = seen.get(h, 0) + 1
    return sum(1 for c in seen.values() if c > 1)
