"""python -m srt_agent.loadgen: run one benchmark point and write its JSON result atomically."""

from __future__ import annotations

import sys

from srt_agent.errors import SrtError

from .config import from_argv
from .runner import run_point, write_result
from .trace_runner import run_trace
from .validity import verdict


def main(argv: list[str] | None = None) -> int:
    config, out = from_argv(argv)
    try:
        result = (run_trace if config.trace_file else run_point)(config)
    except SrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    problem = verdict(result, config.max_failed_fraction)  # the one validity check of a point
    if out:
        write_result(result, out)
    print(format_summary(result))
    if problem is not None:
        print(f"INVALID: {problem}", file=sys.stderr)
        return problem.exit_code
    return 0


def format_summary(r: dict) -> str:
    lines = [
        (f"concurrency {r['max_concurrency']}  rate {r['request_rate']}  completed {r['completed']}  "
         f"failed {r['failed']}  duration {r['duration']:.2f} s"),
        (f"throughput: {r['request_throughput']:.2f} req/s  {r['output_throughput']:.1f} out tok/s  "
         f"{r['total_token_throughput']:.1f} total tok/s"),
    ]
    for m in ("ttft", "tpot", "itl", "e2el"):
        lines.append(f"{m.upper():5s} ms: mean {r[f'mean_{m}_ms']:.2f}  median {r[f'median_{m}_ms']:.2f}  "
                     f"p90 {r[f'p90_{m}_ms']:.2f}  p99 {r[f'p99_{m}_ms']:.2f}")
    lines.append(f"schedule delay p50/p99 {r['median_schedule_delay_ms']:.2f}/{r['p99_schedule_delay_ms']:.2f} ms  "
                 f"client lag p99 {r['p99_client_lag_ms']:.2f} ms  loop lag p99 {r['p99_loop_lag_ms']:.2f} ms  "
                 f"client cpu {r['client_cpu']}")
    for w in r["client_warnings"]:
        lines.append(f"WARNING: {w}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
