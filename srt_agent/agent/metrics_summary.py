"""The `server_metrics` summary of one point, per role, from the scraped samples of its window.

Per role (prefill, decode, agg, frontend, router):
  targets, scrapes, failed_scrapes, first_error
  gauges that count (running, queued, used_tokens, gen_throughput, queues, frontend_inflight ...):
      {"mean", "max"} over the window of the role's total at each tick
  ratios (token_usage, cache_hit_rate): {"mean", "max"} over every target and tick
  counters (*_total): the increase over the window and its rate, e.g. generation_tokens_per_s,
      prompt_tokens_per_s; the prefill/decode split as prefill_compute_tokens,
      prefill_cache_tokens, decode_tokens and prefill_cache_fraction.
  histograms (HISTOGRAMS: frontend_ttft, frontend_itl, frontend_request_duration, ttft, itl):
      `<name>_ms` = {"count", "mean", "p50", "p90", "p99"} of the observations made inside the
      window: count and mean from the _count/_sum counters, quantiles interpolated in the buckets
      (as Prometheus' histogram_quantile does) between the first and last bucket snapshot of
      each target in the window, summed over the role's targets.
"""

from __future__ import annotations

from collections import defaultdict

from .server_metrics import COLUMNS, HIST_COLUMNS, HISTOGRAMS, Sample

RATIOS = ("token_usage", "cache_hit_rate")


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {"mean": _sig(sum(values) / len(values)), "max": _sig(max(values))}


def summarize_role(samples: list[Sample]) -> dict:
    ok = [s for s in samples if s.values is not None]
    failed = [s for s in samples if s.values is None]
    out: dict = {"targets": len({s.target.name for s in samples}), "scrapes": len(samples),
                 "failed_scrapes": len(failed)}
    if failed:
        out["first_error"] = f"{failed[0].target.name}: {failed[0].error}"
    by_tick: dict[float, list[Sample]] = defaultdict(list)
    for s in ok:
        by_tick[s.t].append(s)
    for col in COLUMNS:
        if col.endswith("_total") or col in HIST_COLUMNS or not any(col in s.values for s in ok):  # type: ignore[operator]
            continue
        if col in RATIOS:
            st = _stats([s.values[col] for s in ok if col in s.values])  # type: ignore[index,operator]
        else:
            st = _stats([sum(s.values.get(col, 0.0) for s in tick) for tick in by_tick.values()])  # type: ignore[union-attr]
        if st is not None:
            out[col] = st
    deltas, span = _counter_deltas(ok)
    for col, delta in deltas.items():
        if col in HIST_COLUMNS:
            continue
        key = col[: -len("_total")]
        out[key] = round(delta, 3)
        if span > 0:
            out[f"{key}_per_s"] = round(delta / span, 3)
    for col in HISTOGRAMS:
        st = _histogram(ok, col, deltas)
        if st is not None:
            out[f"{col}_ms"] = st
    pc, pk = deltas.get("prefill_compute_tokens_total"), deltas.get("prefill_cache_tokens_total")
    if pc is not None and pk is not None and pc + pk > 0:
        out["prefill_cache_fraction"] = round(pk / (pc + pk), 4)
    return out


def _counter_deltas(ok: list[Sample]) -> tuple[dict[str, float], float]:
    """Increase of every counter over the window, summed over targets; the span it covers (s)."""
    per_target: dict[str, list[Sample]] = defaultdict(list)
    for s in ok:
        per_target[s.target.name].append(s)
    deltas: dict[str, float] = {}
    spans = []
    for rows in per_target.values():
        rows.sort(key=lambda s: s.t)
        first, last = rows[0], rows[-1]
        if last.t > first.t:
            spans.append(last.t - first.t)
        for col in COLUMNS:
            # a labelled series appears with its first observation: absent at the start means 0
            if (col.endswith("_total") or col in HIST_COLUMNS) and col in last.values:  # type: ignore[operator]
                d = last.values[col] - first.values.get(col, 0.0)  # type: ignore[index,union-attr]
                deltas[col] = deltas.get(col, 0.0) + max(0.0, d)  # a restart resets a counter
    return deltas, (max(spans) if spans else 0.0)


def _histogram(ok: list[Sample], col: str, deltas: dict[str, float]) -> dict | None:
    """Count, mean and quantiles (ms) of one histogram's observations inside the window."""
    n, total = deltas.get(f"{col}_count"), deltas.get(f"{col}_sum")
    if n is None or total is None:
        return None
    out: dict = {"count": int(n)}
    if n <= 0:
        return out
    out["mean"] = _sig(1000 * total / n)
    buckets: dict[float, float] = defaultdict(float)
    per_target: dict[str, list[Sample]] = defaultdict(list)
    for s in ok:
        if s.hist and col in s.hist:
            per_target[s.target.name].append(s)
    for rows in per_target.values():
        rows.sort(key=lambda s: s.t)
        first, last = rows[0].hist[col], rows[-1].hist[col]  # type: ignore[index]
        for le, c in last.items():
            buckets[le] += max(0.0, c - first.get(le, 0.0))
    for q in (0.5, 0.9, 0.99):
        v = quantile(q, buckets)
        if v is not None:
            out[f"p{round(q * 100)}"] = _sig(1000 * v)
    return out


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Prometheus' histogram_quantile over cumulative bucket counts {le: count}: linear inside the
    bucket that holds the rank; the highest finite bound when the rank falls in +Inf."""
    les = sorted(buckets)
    if not les or les[-1] != float("inf") or buckets[les[-1]] <= 0:
        return None
    total = buckets[les[-1]]
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = buckets[le]
        if c >= rank:
            if le == float("inf"):
                return prev_le
            if c == prev_c:
                return le
            lo = prev_le if prev_le < le else 0.0
            return lo + (le - lo) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


def summarize(samples: list[Sample], *, file: str | None, interval_s: float, window: tuple[float, float]) -> dict:
    roles: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        roles[s.target.role].append(s)
    return {"file": file, "interval_s": interval_s, "window_s": round(window[1] - window[0], 3),
            "roles": {role: summarize_role(rows) for role, rows in sorted(roles.items())}}
