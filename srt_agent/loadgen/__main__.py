"""python -m srt_agent.loadgen: run one benchmark point and write its JSON result atomically."""

from __future__ import annotations

import argparse
import json
import math
import sys

from srt_agent.errors import SrtError

from .runner import LoadConfig, run_point, write_result
from .validity import check_point


def _rate(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0 or inf")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m srt_agent.loadgen", description=__doc__)
    p.add_argument("--url", required=True, help="base URL of the OpenAI endpoint, e.g. http://127.0.0.1:8000")
    p.add_argument("--endpoint", default="/v1/completions")
    p.add_argument("--model", required=True, help="model name sent in each request")
    p.add_argument("--isl", type=int, required=True, help="input tokens per request")
    p.add_argument("--osl", type=int, required=True, help="output tokens per request (max_tokens, ignore_eos)")
    p.add_argument("--concurrency", type=int, required=True, help="requests in flight at most")
    n = p.add_mutually_exclusive_group()
    n.add_argument("--num-prompts", type=int, help="measured requests (default: multiplier x concurrency)")
    n.add_argument("--prompt-multiplier", type=float, default=10.0)
    p.add_argument("--warmup-multiplier", type=float, default=2.0, help="warmup requests = this x concurrency")
    p.add_argument("--request-rate", type=_rate, default=math.inf,
                   help="Poisson arrivals per second, or inf for a closed loop (default)")
    p.add_argument("--random-range-ratio", type=float, default=1.0,
                   help="lengths uniform in [ratio x N, N]; 1.0 = fixed lengths")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokenizer", help="directory with tokenizer.json: send text prompts instead of token ids")
    p.add_argument("--processes", type=int, help="worker processes (default: from the cores and the expected event "
                   "rate, concurrency x 1000 / --expected-itl-ms)")
    p.add_argument("--expected-itl-ms", type=float, help="expected gap between tokens, sizes the default process "
                   "count (default: assume 10 ms)")
    p.add_argument("--http", choices=("lean", "aiohttp"), default="lean")
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio event loop")
    p.add_argument("--request-timeout", type=float, default=6 * 3600.0, help="seconds per request")
    p.add_argument("--total-gpus", type=int, help="denominator of the *_per_gpu keys")
    p.add_argument("--decode-gpus", type=int, help="denominator of output_tok_s_per_decode_gpu (disaggregated)")
    p.add_argument("--extra-body", type=json.loads, default={}, help="JSON object merged into every request")
    p.add_argument("--max-failed-fraction", type=float, default=0.01)
    p.add_argument("--out", help="write the result JSON here (atomically)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = LoadConfig(
        url=args.url, endpoint=args.endpoint, model=args.model, isl=args.isl, osl=args.osl,
        concurrency=args.concurrency, num_prompts=args.num_prompts, prompt_multiplier=args.prompt_multiplier,
        warmup_multiplier=args.warmup_multiplier, request_rate=args.request_rate,
        random_range_ratio=args.random_range_ratio, seed=args.seed, tokenizer=args.tokenizer,
        processes=args.processes, expected_itl_ms=args.expected_itl_ms, http=args.http, use_uvloop=not args.no_uvloop,
        request_timeout=args.request_timeout or None, total_gpus=args.total_gpus,
        decode_gpus=args.decode_gpus, extra_body=args.extra_body)
    try:
        result = run_point(config)
    except SrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if args.out:
        write_result(result, args.out)
    print(format_summary(result))
    try:
        check_point(result, args.max_failed_fraction)
    except SrtError as e:
        print(f"INVALID: {e}", file=sys.stderr)
        return e.exit_code
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
