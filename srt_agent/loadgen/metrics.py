"""Per-point metrics: a pure function from per-request records to the result dict.

Definitions (times from the request's SCHEDULED send time, see RequestRecord):
    TTFT  = arrival of the first event carrying a non-empty token - scheduled
    E2EL  = arrival of the response's last byte - scheduled
    TPOT  = (E2EL - TTFT) / (output_tokens - 1), requests with >= 2 output tokens
    ITL   = gaps between consecutive events that carry tokens, within one request
    output tokens = usage.completion_tokens of the usage chunk, else the token-carrying events
Percentiles interpolate linearly between order statistics (numpy's default); std is the
population standard deviation. Empty samples give 0.0 (check_point rejects such points).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from .records import ItlHistogram, RequestRecord

PERCENTILES = (("median", 50.0), ("p90", 90.0), ("p99", 99.0))
CLIENT_LAG_WARN_MS = 10.0
LOOP_LAG_WARN_MS = 10.0
CPU_WARN_FRACTION = 0.9
ITL_LAG_FRACTION = 0.5  # with an expected ITL: loop lag p99 above this fraction of it is warned about
ITL_FAST_FRACTION = 0.5  # ... and a median ITL below this fraction of it


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics; values must be sorted."""
    if not values:
        return 0.0
    pos = (len(values) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def _stats_ms(prefix: str, seconds: Iterable[float]) -> dict[str, float]:
    vals = sorted(v * 1000.0 for v in seconds)
    n = len(vals)
    mean = sum(vals) / n if n else 0.0
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / n) if n else 0.0
    out = {f"mean_{prefix}_ms": mean, f"std_{prefix}_ms": std}
    for name, q in PERCENTILES:
        out[f"{name}_{prefix}_ms"] = percentile(vals, q)
    return out


def _hist_stats_ms(prefix: str, hist: ItlHistogram) -> dict[str, float]:
    out = {f"mean_{prefix}_ms": hist.mean() * 1000.0, f"std_{prefix}_ms": hist.std() * 1000.0}
    for name, q in PERCENTILES:
        out[f"{name}_{prefix}_ms"] = hist.percentile(q) * 1000.0
    return out


def _per(numerator: float, denominator: float | None) -> float | None:
    if not denominator:
        return None
    return numerator / denominator


def summarize(
    records: Sequence[RequestRecord],
    *,
    start: float,
    max_concurrency: int,
    request_rate: float = math.inf,
    itl: ItlHistogram | None = None,
    total_gpus: int | None = None,
    decode_gpus: int | None = None,
    client_cpu: Sequence[float] = (),
    loop_lag_p99_ms: float | None = None,
    expected_itl_ms: float | None = None,
) -> dict:
    """Result dict of one benchmark point.

    records: the measured requests (warmup excluded). start: the measured phase's start
    (monotonic seconds). itl: gaps of successful requests already folded by the workers; gaps
    of successful records that still carry chunk_times are added to a copy. total_gpus / decode_gpus: denominators of the
    per-GPU keys (decode_gpus only for disaggregated serving). expected_itl_ms: the gap the job
    expects between tokens; the timing checks compare against it (see _warnings).
    """
    hist = ItlHistogram()
    if itl is not None:
        hist.merge(itl)
    done = [r for r in records if r.ok]
    for r in done:
        if r.chunk_times:
            hist.add_times(r.chunk_times)

    failed = len(records) - len(done)
    ends = [r.end for r in records if r.end is not None]
    duration = (max(ends) - start) if ends else 0.0
    total_in = sum(r.input_tokens for r in done)
    total_out = sum(r.output_tokens for r in done)

    result: dict = {
        "completed": len(done),
        "failed": failed,
        "num_requests": len(records),
        "duration": duration,
        "total_input_tokens": total_in,
        "total_output_tokens": total_out,
        "request_throughput": _per(len(done), duration) or 0.0,
        "output_throughput": _per(total_out, duration) or 0.0,
        "total_token_throughput": _per(total_in + total_out, duration) or 0.0,
        "max_concurrency": max_concurrency,
        "request_rate": "inf" if math.isinf(request_rate) else request_rate,
    }
    result.update(_stats_ms("ttft", (r.ttft for r in done if r.ttft is not None)))
    result.update(_stats_ms("tpot", (r.tpot for r in done if r.tpot is not None)))
    result.update(_hist_stats_ms("itl", hist))
    result.update(_stats_ms("e2el", (r.e2el for r in done if r.e2el is not None)))

    # per-user and per-GPU views (the Pareto axes)
    result["tok_s_per_user"] = _per(1000.0, result["mean_tpot_ms"]) or 0.0
    result["tok_s_per_user_median"] = _per(1000.0, result["median_tpot_ms"]) or 0.0
    result["total_gpus"] = total_gpus
    result["decode_gpus"] = decode_gpus
    result["output_tok_s_per_gpu"] = _per(result["output_throughput"], total_gpus)
    result["total_tok_s_per_gpu"] = _per(result["total_token_throughput"], total_gpus)
    result["output_tok_s_per_decode_gpu"] = _per(result["output_throughput"], decode_gpus)

    # how well the client kept its schedule
    sent = [r for r in records if r.sent]
    delays = sorted((r.sent - r.scheduled) * 1000.0 for r in sent)
    lags = sorted((r.sent - r.ready) * 1000.0 for r in sent)
    result["median_schedule_delay_ms"] = percentile(delays, 50.0)
    result["p99_schedule_delay_ms"] = percentile(delays, 99.0)
    result["median_client_lag_ms"] = percentile(lags, 50.0)
    result["p99_client_lag_ms"] = percentile(lags, 99.0)
    last_send = max((r.sent for r in sent), default=start)
    result["achieved_request_rate"] = _per(len(sent), last_send - start) or 0.0
    result["client_cpu"] = [round(c, 3) for c in client_cpu]
    result["p99_loop_lag_ms"] = loop_lag_p99_ms
    result["errors"] = dict(Counter(r.error or "unknown" for r in records if not r.ok).most_common(10))
    result["client_warnings"] = _warnings(result, done, request_rate, max_concurrency, expected_itl_ms)
    return result


def _warnings(result: dict, done: list[RequestRecord], rate: float, conc: int,
              expected_itl_ms: float | None = None) -> list[str]:
    warns = []
    if result["p99_client_lag_ms"] > CLIENT_LAG_WARN_MS:
        warns.append(
            f"client lag p99 {result['p99_client_lag_ms']:.1f} ms > {CLIENT_LAG_WARN_MS:g} ms: the client "
            "sent requests late (latencies include the delay; the client may be the bottleneck)")
    lag = result["p99_loop_lag_ms"]
    # token timestamps are as late as the loop: past half the expected gap, ITLs are not trustworthy
    lag_limit = min(LOOP_LAG_WARN_MS, expected_itl_ms * ITL_LAG_FRACTION) if expected_itl_ms else LOOP_LAG_WARN_MS
    if lag is not None and lag > lag_limit:
        why = f"half the expected ITL {expected_itl_ms:g} ms" if lag_limit < LOOP_LAG_WARN_MS else f"{lag_limit:g} ms"
        warns.append(f"event loop lag p99 {lag:.1f} ms > {why}: token timestamps "
                     "may be late by up to that much")
    itl = result["median_itl_ms"]
    if expected_itl_ms and done and itl < expected_itl_ms * ITL_FAST_FRACTION:
        warns.append(f"ITL median {itl:.2f} ms is under {ITL_FAST_FRACTION:g} x the expected {expected_itl_ms:g} ms: "
                     "tokens came faster than the job expects (a process count sized from it may be too small, "
                     "or events arrived batched)")
    for k, c in enumerate(result["client_cpu"]):
        if c > CPU_WARN_FRACTION:
            warns.append(f"client worker {k} used {c:.0%} of a CPU core: the client may be saturated")
    if not math.isinf(rate) and result["achieved_request_rate"] < 0.9 * rate:
        why = (f"the concurrency cap {conc} was reached" if result["p99_schedule_delay_ms"]
               > result["p99_client_lag_ms"] + CLIENT_LAG_WARN_MS else "the client fell behind")
        warns.append(f"achieved request rate {result['achieved_request_rate']:.2f}/s is below the "
                     f"requested {rate:g}/s ({why})")
    no_usage = sum(1 for r in done if not r.usage_reported)
    if no_usage:
        warns.append(f"{no_usage} requests had no usage chunk: their output tokens were counted "
                     "as token-carrying events")
    short = sum(1 for r in done if r.requested_output_tokens and r.output_tokens < r.requested_output_tokens)
    if short:
        warns.append(f"{short} requests returned fewer output tokens than max_tokens "
                     "(ignore_eos not honoured?)")
    return warns
