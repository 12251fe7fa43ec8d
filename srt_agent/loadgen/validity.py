"""The validity gate: a point that failed must never be reported as a success.

The gate runs once per point, in the load generator (`python -m srt_agent.loadgen` calls
`verdict`), which records its outcome in the result as `valid` / `invalid_reason`; the agent reads
that back (`recorded_verdict`) instead of judging the point a second time.
"""

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


def verdict(result: dict, max_failed_fraction: float = 0.01) -> BenchmarkError | None:
    """Run the gate and record its outcome in the result (`valid`, `invalid_reason`, and the
    threshold it used, `max_failed_fraction`); return the error of an invalid point, else None."""
    try:
        check_point(result, max_failed_fraction)
        problem = None
    except BenchmarkError as e:
        problem = e
    result["valid"] = problem is None
    result["invalid_reason"] = None if problem is None else str(problem)
    result["max_failed_fraction"] = max_failed_fraction
    return problem


def recorded_verdict(result: dict, where: str) -> dict:
    """The point as the load generator judged it: raise its recorded reason if it was invalid.
    `where` names the file for a result without a verdict (a load generator that died mid-write
    leaves no file at all, so this means a foreign or hand-made file)."""
    if "valid" not in result:
        raise BenchmarkError(f"{where} has no validity verdict (keys 'valid', 'invalid_reason'): it was not "
                             f"written by this version of srt_agent.loadgen")
    if not result["valid"]:
        raise BenchmarkError(str(result.get("invalid_reason") or f"{where}: the load generator judged it invalid"))
    return result
