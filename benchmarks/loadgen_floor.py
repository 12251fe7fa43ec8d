"""srt-loadgen against the floor: a minimal raw-socket client that only counts SSE events.

    python benchmarks/loadgen_floor.py [--points 64:20,256:20,1024:20,4096:80] [--osl 256]
    python benchmarks/loadgen_floor.py --capacity 1024 [--processes 1,2] [--repeat 3]   # zero-latency server

Timing points (CONCURRENCY:ITL_MS) use the fixed-timing server of benchmarks/loadgen_fidelity.py
(TTFT 50 ms, one token every ITL ms on its own absolute deadline, in its own process); each
point runs the floor, then srt-loadgen (default settings), each with C warmup and 2 x C measured
requests (ISL 128, OSL 256), against one server process, and prints both side by side with the
server's own gap p99 and the ratios issue 18 names. --capacity runs the zero-latency server of
benchmarks/loadgen_capacity.py and compares output tokens/s (floor: one process; ours: the auto
default and each --processes value).

The floor (FloorClient below) is the least a client can do: C asyncio stream connections, each
writes a request, reads, and timestamps every read that holds token events (counted by byte
pattern, no JSON, no HTTP parser beyond finding the chunked terminator), one connection per slot
kept from the warmup into the measured phase. TTFT = first token read - send; client lag = send -
when the slot became free (T0, then the previous response's last read), srt-loadgen's definition,
so the floor's lag is what the machine allows any client. Not a test: prints a table for docs/benchmarking.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from loadgen_capacity import server_process
from loadgen_fidelity import WARMUP_BASE, http_json

# ---- the floor client (a few dozen lines) -------------------------------------------------------


def _prompt(g: int, isl: int) -> bytes:
    """The same 4-token index prefix srt-loadgen writes, so the server tells warmup from measured."""
    digits = []
    for _ in range(4):
        g, d = divmod(g, 29000)
        digits.append(str(1000 + d))
    return ("[" + ",".join(digits + ["1234"] * (isl - 4)) + "]").encode()


async def floor_run(port: int, conc: int, n: int, isl: int, osl: int, warmup: int) -> dict:
    def request(g: int) -> bytes:
        body = b'{"model":"m","prompt":%s,"max_tokens":%d,"stream":true,"ignore_eos":true}' % (_prompt(g, isl), osl)
        return (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    ttfts, gaps, lags, tokens = [], [], [], 0

    async def conn(stream, todo, measured, t0):
        nonlocal tokens
        reader, writer = stream
        free = t0  # when this slot could send: T0, then the previous response's last read
        for g in todo:
            writer.write(request(g))
            sent, last, tail = time.monotonic(), None, b""
            if measured:
                lags.append(sent - free)
            while True:
                data = await reader.read(1 << 16)
                t = time.monotonic()
                k = data.count(b'"text":"')
                if k and measured:
                    tokens += k
                    if last is None:
                        ttfts.append(t - sent)
                    else:
                        gaps.append(t - last)
                    gaps.extend([0.0] * (k - 1))
                if k:
                    last = t
                tail = (tail + data)[-5:]
                if tail == b"0\r\n\r\n" or not data:
                    break
            free = t

    # one connection per slot, kept from the warmup into the measured phase (as srt-loadgen does)
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(conc)]
    warm = iter(range(WARMUP_BASE, WARMUP_BASE + warmup))
    await asyncio.gather(*(conn(st, warm, False, time.monotonic()) for st in streams))
    todo = iter(range(n))
    t0 = time.monotonic()
    await asyncio.gather(*(conn(st, todo, True, t0) for st in streams))
    duration = time.monotonic() - t0
    for _, writer in streams:
        writer.close()
    return {"ttfts": sorted(ttfts), "gaps": sorted(gaps), "lags": sorted(lags), "tokens": tokens,
            "duration": duration}


def run_floor(port: int, conc: int, n: int, isl: int, osl: int, warmup: int) -> dict:
    from srt_agent.loadgen.metrics import percentile
    from srt_agent.loadgen.worker import new_event_loop

    loop = new_event_loop(True)
    try:
        cpu0 = time.process_time()
        r = loop.run_until_complete(floor_run(port, conc, n, isl, osl, warmup))
        cpu = (time.process_time() - cpu0) / r["duration"]
    finally:
        loop.close()
    tt, gaps, lags = ([x * 1000 for x in r[k]] for k in ("ttfts", "gaps", "lags"))
    return {"completed": len(tt), "median_ttft_ms": percentile(tt, 50), "p99_ttft_ms": percentile(tt, 99),
            "median_itl_ms": percentile(gaps, 50), "p99_itl_ms": percentile(gaps, 99),
            "output_throughput": r["tokens"] / r["duration"], "client_cpu": [round(cpu, 3)],
            "p99_client_lag_ms": percentile(lags, 99), "processes": 1}


# ---- the comparison -----------------------------------------------------------------------------


def run_ours(port: int, conc: int, n: int, isl: int, osl: int, processes: int | None, interval_ms: float = 0.0):
    from srt_agent.loadgen import LoadConfig, run_point

    cfg = LoadConfig(url=f"http://127.0.0.1:{port}", model="m", isl=isl, osl=osl, concurrency=conc,
                     num_prompts=n, warmup_multiplier=1.0, processes=processes,
                     expected_itl_ms=interval_ms or None)
    return run_point(cfg)


def timing_points(args) -> None:
    rows = []
    for k, point in enumerate(args.points.split(",")):
        conc, interval = int(point.split(":")[0]), float(point.split(":")[1])
        port = args.port + k
        url = f"http://127.0.0.1:{port}"
        cmd = [os.path.join(HERE, "loadgen_fidelity.py"), "--serve-timed", str(port), str(args.ttft_ms), str(interval)]
        with server_process(cmd, port):
            n = conc * 2
            for name in ("floor", "srt-loadgen"):
                http_json(url + "/reset", "POST")
                if name == "floor":
                    r = run_floor(port, conc, n, args.isl, args.osl, warmup=conc)
                else:
                    r = run_ours(port, conc, n, args.isl, args.osl, args.ours_processes, interval)
                truth = http_json(url + "/stats")
                rows.append((name, conc, interval, r, truth))
                print(f"{name:11s} C={conc:5d} ITL {interval:g} ms: TTFT p50/p99 {r['median_ttft_ms']:.1f}/"
                      f"{r['p99_ttft_ms']:.1f} ms  ITL p50/p99 {r['median_itl_ms']:.2f}/{r['p99_itl_ms']:.2f} ms  "
                      f"server gap p99 {truth['p99_itl_ms']:.2f} ms  server late p99 {truth['p99_lateness_ms']:.1f} ms  "
                      f"client lag p99 {fmt(r['p99_client_lag_ms'], '.2f')} ms  cpu {r['client_cpu']}", flush=True)
    print("\n| C | ITL ms | client | TTFT p50 / p99 ms | ITL p50 / p99 ms | server gap p99 ms | client lag p99 ms "
          "| client CPU | TTFT p50 ours/floor | ITL p99 ours - server gap p99 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    floor = {}
    for name, conc, interval, r, t in rows:
        ratio = diff = "-"
        if name == "floor":
            floor[conc] = r
        elif conc in floor:
            ratio = f"{r['median_ttft_ms'] / floor[conc]['median_ttft_ms']:.2f}x"
            diff = f"{r['p99_itl_ms'] - t['p99_itl_ms']:+.2f} ms"
        print(f"| {conc} | {interval:g} | {name} | {r['median_ttft_ms']:.1f} / {r['p99_ttft_ms']:.1f} | "
              f"{r['median_itl_ms']:.2f} / {r['p99_itl_ms']:.2f} | {t['p99_itl_ms']:.2f} | "
              f"{fmt(r['p99_client_lag_ms'], '.2f')} | {', '.join(f'{c:.2f}' for c in r['client_cpu'])} | "
              f"{ratio} | {diff} |")


def capacity(args) -> None:
    """Zero-latency server: output tokens/s of the floor, srt-loadgen's default process count and each
    --processes value, run round-robin --repeat times (so every setting sees the same machine load
    on average) and compared by their medians."""
    import statistics

    port = args.port + 50
    cmd = [os.path.join(HERE, "loadgen_capacity.py"), "--serve-zero", str(port)]
    conc = args.capacity
    n = conc * args.requests_per_slot
    runs: dict[str, list[dict]] = {}
    with server_process(cmd, port):
        settings = ([] if args.no_floor else [("floor", 1)]) + [("srt-loadgen", None)] + \
            [("srt-loadgen", int(p)) for p in args.processes.split(",") if p]
        for rep in range(args.repeat):
            for name, procs in settings:
                if name == "floor":
                    r = run_floor(port, conc, n, args.isl, args.osl, warmup=conc)
                else:
                    r = run_ours(port, conc, n, args.isl, args.osl, procs, args.expected_itl_ms or 0.0)
                label = "floor" if name == "floor" else f"srt-loadgen --processes {procs}" if procs else \
                    f"srt-loadgen default ({r['processes']})"
                runs.setdefault(label, []).append(r)
                print(f"run {rep + 1}: {label:32s} C={conc} {r['output_throughput']:>11,.0f} tok/s  "
                      f"cpu {r['client_cpu']}  peak RSS {r.get('client_peak_rss_mb', '-')} MB", flush=True)
    from srt_agent.loadgen.worker import peak_rss_mb

    print(f"this process (the parent of srt-loadgen's workers; also ran the floor unless --no-floor): "
          f"peak RSS {peak_rss_mb()} MB")
    med = {label: statistics.median(r["output_throughput"] for r in rs) for label, rs in runs.items()}
    best = max(v for label, v in med.items() if label != "floor")
    print(f"\n| client | C | output tok/s, median of {args.repeat} (each run) | of best srt-loadgen setting "
          f"| client CPU (last run) | peak RSS per process MB (last run) |")
    print("|---|---|---|---|---|---|")
    for label, rs in runs.items():
        each = ", ".join(f"{r['output_throughput'] / 1000:,.0f}k" for r in rs)
        last = rs[-1]
        print(f"| {label} | {conc} | {med[label]:,.0f} ({each}) | {med[label] / best:.0%} | "
              f"{', '.join(f'{c:.2f}' for c in last['client_cpu'])} | {last.get('client_peak_rss_mb', '-')} |")


def fmt(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", default="64:20,256:20,1024:20,4096:80")
    ap.add_argument("--capacity", type=int, help="run the zero-latency capacity comparison at this concurrency")
    ap.add_argument("--processes", default="1,2", help="--capacity: srt-loadgen process counts to try")
    ap.add_argument("--ours-processes", type=int, help="timing points: srt-loadgen processes (default: auto)")
    ap.add_argument("--no-floor", action="store_true", help="--capacity: srt-loadgen only (memory figures)")
    ap.add_argument("--requests-per-slot", type=int, default=10, help="--capacity: measured requests per slot")
    ap.add_argument("--repeat", type=int, default=1, help="--capacity: rounds over the settings (medians compared)")
    ap.add_argument("--expected-itl-ms", type=float, help="--capacity: srt-loadgen's expected ITL (default: none)")
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--isl", type=int, default=128)
    ap.add_argument("--osl", type=int, default=256)
    ap.add_argument("--port", type=int, default=31700)
    args = ap.parse_args()
    if args.capacity:
        capacity(args)
    else:
        timing_points(args)


if __name__ == "__main__":
    main()
