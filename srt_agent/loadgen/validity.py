"""The validity gate: a point that failed must never be reported as a success."""

from __future__ import annotations

from srt_agent.errors import BenchmarkError


def check_point(result: dict, max_failed_fraction: float = 0.01) -> dict:
    """Raise BenchmarkError if the point is not a valid measurement; return it unchanged if it is.

    Invalid: no request completed, zero output tokens, or more than max_failed_fraction of the
    measured requests failed.
    """
    completed = int(result.get("completed") or 0)
    failed = int(result.get("failed") or 0)
    total = completed + failed
    conc = result.get("max_concurrency")
    where = f"concurrency {conc}" if conc is not None else "benchmark point"
    errors = result.get("errors") or {}
    top = "; ".join(f"{n}x {msg}" for msg, n in list(errors.items())[:3])
    detail = f" (errors: {top})" if top else ""
    if completed == 0:
        raise BenchmarkError(f"{where}: no request completed out of {total}{detail}")
    if int(result.get("total_output_tokens") or 0) <= 0:
        raise BenchmarkError(f"{where}: {completed} requests completed but zero output tokens came back")
    if total and failed / total > max_failed_fraction:
        raise BenchmarkError(f"{where}: {failed} of {total} requests failed "
                             f"({failed / total:.1%} > {max_failed_fraction:.1%}){detail}")
    return result
