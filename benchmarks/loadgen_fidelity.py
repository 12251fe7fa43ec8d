"""Timing fidelity: measured TTFT/ITL against a server whose timing is known.

    python benchmarks/loadgen_fidelity.py [--server builtin|sim] [--points 1:20,256:20,1024:20,4096:80,8192:160]

Each point is CONCURRENCY:TOKEN_INTERVAL_MS. The interval grows with concurrency so the server
(a Python process on the same 2 cores) stays on time; the server's own lateness is measured and
printed, so a late server is never blamed on (or credited to) the client.

builtin server: an engine-like stepper in its own process (uvloop). A request gets its first token
at the first step at least TTFT after it arrived, then one token per step; every step writes one
SSE event to every running stream. It records, per measured request (warmup requests are
recognised by their prompt prefix and left out), the true TTFT (first write - arrival) and the
true gaps between its writes, and per write its lateness behind the ideal step time.
sim server: `python -m srt_agent.sim` with a fixed decode step and prefill made near-free.

Clients: srt-loadgen (default settings) and, where --naive-points allows, the naive baseline of
benchmarks/loadgen_capacity.py (single process, new aiohttp session per request).
Not a test: prints a table (markdown) for docs/benchmarking.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from loadgen_capacity import (SSE_HEAD, HttpServerProtocol, run_naive, serve, server_process,  # noqa: E402
                              tail_events, token_event, wait_port)

PROMPT = re.compile(rb'"prompt":\[(\d+),(\d+),(\d+),(\d+)')
WARMUP_BASE = 1 << 40


def request_index(body: bytes) -> int | None:
    """The global index srt-loadgen writes into the first prompt tokens (see prompts.py)."""
    m = PROMPT.search(body)
    if not m:
        return None
    base = 29000
    return sum((int(d) - 1000) * base**k for k, d in enumerate(m.groups()))


class Engine:
    def __init__(self, ttft: float, interval: float) -> None:
        from srt_agent.loadgen.records import ItlHistogram

        self.ttft, self.interval = ttft, interval
        self.loop = asyncio.get_event_loop()
        self.t0 = time.monotonic()
        self.step = 0
        self.waiting: list = []  # [ready_time, stream]
        self.running: list = []
        self.hist_cls = ItlHistogram
        self.reset()
        self.loop.call_at(self.t0 + interval, self.tick)

    def reset(self) -> None:
        self.ttfts: list[float] = []
        self.itl = self.hist_cls()
        self.lateness: list[float] = []
        self.overruns = 0

    def add(self, proto, n: int, measured: bool) -> None:
        now = time.monotonic()
        self.waiting.append([now + self.ttft, {"proto": proto, "left": n, "n": n, "arrival": now, "times": [],
                                                "measured": measured}])

    def tick(self) -> None:
        ideal = self.t0 + self.step * self.interval + self.interval
        self.step += 1
        now = time.monotonic()
        if self.waiting:
            still = []
            for pair in self.waiting:
                if pair[0] <= now:
                    self.running.append(pair[1])
                else:
                    still.append(pair)
            self.waiting = still
        keep = []
        for s in self.running:
            tr = s["proto"].transport
            if tr is None or tr.is_closing():
                continue
            t = time.monotonic()
            tr.write(token_event(s["n"] - s["left"]))
            if s["measured"]:
                s["times"].append(t)
                self.lateness.append(t - ideal)
            s["left"] -= 1
            if s["left"] == 0:
                tr.write(tail_events(4, s["n"]))
                if s["measured"]:
                    self.ttfts.append(s["times"][0] - s["arrival"])
                    self.itl.add_times(s["times"])
            else:
                keep.append(s)
        self.running = keep
        nxt = self.t0 + (self.step + 1) * self.interval
        late = time.monotonic() - nxt
        if late > 0:  # skip the steps we missed, keep the grid
            missed = int(late / self.interval) + 1
            self.overruns += missed
            self.step += missed
            nxt += missed * self.interval
        self.loop.call_at(nxt, self.tick)

    def stats(self) -> dict:
        from srt_agent.loadgen.metrics import percentile

        tt = sorted(x * 1000 for x in self.ttfts)
        late = sorted(x * 1000 for x in self.lateness)
        return {"requests": len(tt), "median_ttft_ms": percentile(tt, 50), "p99_ttft_ms": percentile(tt, 99),
                "median_itl_ms": self.itl.percentile(50) * 1000, "p99_itl_ms": self.itl.percentile(99) * 1000,
                "median_lateness_ms": percentile(late, 50), "p99_lateness_ms": percentile(late, 99),
                "max_lateness_ms": late[-1] if late else 0.0, "overrun_steps": self.overruns}


ENGINE: Engine | None = None


class TimedProtocol(HttpServerProtocol):
    def request(self, path, body):
        if path == b"/stats":
            return self.json_response(ENGINE.stats())
        if path == b"/reset":
            ENGINE.reset()
            return self.json_response({})
        n = int(re.search(rb'"max_tokens":\s*(\d+)', body).group(1))
        g = request_index(body)
        self.transport.write(SSE_HEAD)
        ENGINE.add(self, n, measured=g is None or g < WARMUP_BASE)

    def connection_lost(self, exc):
        self.transport = None


def serve_timed(port: int, ttft_ms: float, interval_ms: float) -> None:
    async def start():
        global ENGINE
        ENGINE = Engine(ttft_ms / 1000, interval_ms / 1000)

    def factory():
        return TimedProtocol()

    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(start())
    server = loop.run_until_complete(loop.create_server(factory, "127.0.0.1", port, backlog=16384))
    print(f"timed server on 127.0.0.1:{port}", flush=True)
    loop.run_until_complete(server.serve_forever())


def http_json(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=("builtin", "sim"), default="builtin")
    ap.add_argument("--points", default="1:20,256:20,1024:20,4096:80,8192:160")
    ap.add_argument("--naive-points", default="256,1024", help="concurrencies to also run the naive client at")
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--osl", type=int, default=64)
    ap.add_argument("--isl", type=int, default=128)
    ap.add_argument("--requests-per-slot", type=float, default=2.0)
    ap.add_argument("--port", type=int, default=31600)
    ap.add_argument("--processes", type=int, help="srt-loadgen worker processes (default: auto)")
    ap.add_argument("--serve-timed", nargs=3, type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_timed:
        port, ttft, interval = args.serve_timed
        serve_timed(int(port), ttft, interval)
        return
    from srt_agent.loadgen import LoadConfig, run_point

    naive_at = {int(c) for c in args.naive_points.split(",") if c}
    rows = []
    for k, point in enumerate(args.points.split(",")):
        conc, interval = int(point.split(":")[0]), float(point.split(":")[1])
        port = args.port + k
        url = f"http://127.0.0.1:{port}"
        if args.server == "builtin":
            cmd = [os.path.abspath(__file__), "--serve-timed", str(port), str(args.ttft_ms), str(interval)]
        else:
            cmd = ["-m", "srt_agent.sim", *sim_args(port, interval, args)]
        with server_process(cmd, port):
            n = max(1, int(conc * args.requests_per_slot))
            cfg = LoadConfig(url=url, model="m", isl=args.isl, osl=args.osl, concurrency=conc, num_prompts=n,
                             warmup_multiplier=1.0, processes=args.processes)
            if args.server == "builtin":
                http_json(url + "/reset", "POST")
            r = run_point(cfg)
            truth = http_json(url + "/stats") if args.server == "builtin" else sim_truth(interval, args)
            rows.append(("srt-loadgen", conc, interval, r, truth))
            report(rows[-1])
            if conc in naive_at:
                if args.server == "builtin":
                    http_json(url + "/reset", "POST")
                nr = run_naive(url, args.isl, args.osl, conc, n)
                truth = http_json(url + "/stats") if args.server == "builtin" else sim_truth(interval, args)
                rows.append(("naive", conc, interval, nr, truth))
                report(rows[-1])
    print("\n| client | C | interval ms | TTFT p50 / p99 ms (truth) | ITL p50 / p99 ms (truth) | "
          "server lateness p50 / p99 ms | client CPU | warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for name, conc, interval, r, t in rows:
        print(f"| {name} | {conc} | {interval:g} | {r['median_ttft_ms']:.1f} / {r['p99_ttft_ms']:.1f} "
              f"({t['median_ttft_ms']:.1f} / {t['p99_ttft_ms']:.1f}) | {r['median_itl_ms']:.2f} / {r['p99_itl_ms']:.2f} "
              f"({t['median_itl_ms']:.2f} / {t['p99_itl_ms']:.2f}) | {t['median_lateness_ms']:.2f} / "
              f"{t['p99_lateness_ms']:.2f} | {', '.join(f'{c:.2f}' for c in r['client_cpu'])} | "
              f"{len(r.get('client_warnings', []))} |")


def report(row) -> None:
    name, conc, interval, r, t = row
    print(f"{name:11s} C={conc:5d} step {interval:g} ms: completed {r['completed']}  "
          f"TTFT p50/p99 {r['median_ttft_ms']:.1f}/{r['p99_ttft_ms']:.1f} ms (truth {t['median_ttft_ms']:.1f}/"
          f"{t['p99_ttft_ms']:.1f})  ITL p50/p99 {r['median_itl_ms']:.2f}/{r['p99_itl_ms']:.2f} ms (truth "
          f"{t['median_itl_ms']:.2f}/{t['p99_itl_ms']:.2f})  server late p50/p99 {t['median_lateness_ms']:.2f}/"
          f"{t['p99_lateness_ms']:.2f} ms  client cpu {r['client_cpu']}  warnings {r.get('client_warnings', [])}",
          flush=True)


def sim_args(port: int, interval: float, args) -> list[str]:
    raise SystemExit("--server sim: not wired yet")


def sim_truth(interval: float, args) -> dict:
    raise SystemExit("--server sim: not wired yet")


if __name__ == "__main__":
    main()
