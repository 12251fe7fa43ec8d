"""Where srt-loadgen's client lag comes from: the first wave (every slot at T0) vs later requests.

    python benchmarks/loadgen_first_wave.py CONCURRENCY ITL_MS [--code DIR] [--processes K]

Runs one point (ISL 128, OSL 256, C warmup + 2 x C measured requests) against the fixed-timing
server of loadgen_fidelity.py and prints, from the per-request records, the client lag (sent -
when the slot was free) of the first wave and of the later requests, and when the first wave's
sends left relative to T0. --code DIR runs another checkout's srt_agent (e.g. `git archive REV`
unpacked there) for a before/after comparison on the same machine. Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("concurrency", type=int)
    ap.add_argument("itl_ms", type=float)
    ap.add_argument("--code", default=os.path.dirname(HERE), help="checkout whose srt_agent runs")
    ap.add_argument("--processes", type=int)
    ap.add_argument("--port", type=int, default=31780)
    args = ap.parse_args()
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.abspath(args.code))
    os.chdir(args.code)  # the worker processes (python -m) import from the working directory
    from loadgen_capacity import server_process
    from loadgen_fidelity import http_json

    import srt_agent.loadgen.runner as runner
    from srt_agent.loadgen import LoadConfig, run_point
    from srt_agent.loadgen.metrics import percentile

    seen = {}
    summarize = runner.summarize

    def keep(records, **kw):
        seen.update(records=records, start=kw["start"])
        return summarize(records, **kw)

    runner.summarize = keep
    c, itl = args.concurrency, args.itl_ms
    cmd = [os.path.join(HERE, "loadgen_fidelity.py"), "--serve-timed", str(args.port), "50", str(itl)]
    with server_process(cmd, args.port):
        r = run_point(LoadConfig(url=f"http://127.0.0.1:{args.port}", model="m", isl=128, osl=256, concurrency=c,
                                 num_prompts=2 * c, warmup_multiplier=1.0, processes=args.processes,
                                 expected_itl_ms=itl))
        truth = http_json(f"http://127.0.0.1:{args.port}/stats")
    recs, t0 = seen["records"], seen["start"]
    waves = (("first wave", [x for x in recs if x.scheduled == t0]), ("later", [x for x in recs if x.scheduled != t0]))
    for name, rs in waves:
        lags = sorted((x.sent - x.ready) * 1000 for x in rs)
        print(f"{name}: {len(rs)} requests, client lag p50 {percentile(lags, 50):.2f} p90 {percentile(lags, 90):.2f} "
              f"p99 {percentile(lags, 99):.2f} max {lags[-1]:.2f} ms")
    sent = sorted((x.sent - t0) * 1000 for x in waves[0][1])
    at = " ".join(f"{q:.0%} {sent[int(q * (len(sent) - 1))]:.2f}" for q in (0, .1, .25, .5, .75, .9, 1))
    gaps = sorted(b - a for a, b in zip(sent, sent[1:]))[-3:]
    print(f"first wave sent after T0 (ms) at fractions: {at}; largest gaps {', '.join(f'{g:.2f}' for g in gaps)} ms")
    print(f"point: client lag p99 {r['p99_client_lag_ms']:.2f} ms, loop lag p99 {r['p99_loop_lag_ms']:.2f} ms, "
          f"cpu {r['client_cpu']}, processes {r['processes']}, server late p99 {truth['p99_lateness_ms']:.1f} ms, "
          f"TTFT p50 {r['median_ttft_ms']:.1f} ms, ITL p99 {r['p99_itl_ms']:.2f} ms - server gap p99 "
          f"{truth['p99_itl_ms']:.2f} ms = {r['p99_itl_ms'] - truth['p99_itl_ms']:+.2f} ms")


if __name__ == "__main__":
    main()
