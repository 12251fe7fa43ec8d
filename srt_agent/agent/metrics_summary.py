"""The `server_metrics` summary of one point, per role, from the scraped samples of its window.

Per role (prefill, decode, agg, frontend, router):
  targets, scrapes, failed_scrapes, first_error
  gauges that count (running, queued, used_tokens, gen_throughput, queues, frontend_inflight ...):
      {"mean", "max"} over the window of the role's total at each tick
  ratios (token_usage, cache_hit_rate): {"mean", "max"} over every target and tick
  counters (*_total): the increase over the window and its rate, e.g. generation_tokens_per_s,
      prompt_tokens_per_s; the prefill/decode split as prefill_compute_tokens,
      prefill_cache_tokens, decode_tokens and prefill_cache_fraction.
"""

from __future__ import annotations

from collections import defaultdict

from .server_metrics import COLUMNS, Sample

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
        if col.endswith("_total") or not any(col in s.values for s in ok):  # type: ignore[operator]
            continue
        if col in RATIOS:
            st = _stats([s.values[col] for s in ok if col in s.values])  # type: ignore[index,operator]
        else:
            st = _stats([sum(s.values.get(col, 0.0) for s in tick) for tick in by_tick.values()])  # type: ignore[union-attr]
        if st is not None:
            out[col] = st
    deltas, span = _counter_deltas(ok)
    for col, delta in deltas.items():
        key = col[: -len("_total")]
        out[key] = round(delta, 3)
        if span > 0:
            out[f"{key}_per_s"] = round(delta / span, 3)
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
            if col.endswith("_total") and col in first.values and col in last.values:  # type: ignore[operator]
                d = last.values[col] - first.values[col]  # type: ignore[index]
                deltas[col] = deltas.get(col, 0.0) + max(0.0, d)  # a restart resets a counter
    return deltas, (max(spans) if spans else 0.0)


def summarize(samples: list[Sample], *, file: str | None, interval_s: float, window: tuple[float, float]) -> dict:
    roles: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        roles[s.target.role].append(s)
    return {"file": file, "interval_s": interval_s, "window_s": round(window[1] - window[0], 3),
            "roles": {role: summarize_role(rows) for role, rows in sorted(roles.items())}}
