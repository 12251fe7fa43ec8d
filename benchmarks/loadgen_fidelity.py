"""Timing fidelity: measured TTFT/ITL against a server whose timing is known.

    python benchmarks/loadgen_fidelity.py [--server builtin|sim] [--points 1:20,256:20,1024:20,4096:80,8192:160]

Each point is CONCURRENCY:TOKEN_INTERVAL_MS. The interval grows with concurrency so the server
(a Python process on the same 2 cores) stays on time; the server's own lateness is measured and
printed, so a late server is never blamed on (or credited to) the client.

builtin server: a fixed-timing streamer in its own process (uvloop, raw asyncio protocol): first
token TTFT after the request arrived, then one token every interval, each on its own absolute
deadline. It records, per measured request (warmup requests are recognised by their prompt
prefix and left out), the true TTFT (first write - arrival), the true gaps between its writes, and
per write its lateness behind the deadline.
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
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from loadgen_capacity import SSE_HEAD, HttpServerProtocol, run_naive, server_process, tail_events, token_event

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
    """Fixed timing per stream: first token TTFT after the request arrived, then one every interval,
    each on its own absolute deadline (a timer per stream, so no stream waits for a global step)."""

    def __init__(self, ttft: float, interval: float) -> None:
        from srt_agent.loadgen.records import ItlHistogram

        self.ttft, self.interval = ttft, interval
        self.loop = asyncio.get_event_loop()
        self.hist_cls = ItlHistogram
        self.reset()

    def reset(self) -> None:
        self.ttfts: list[float] = []
        self.itl = self.hist_cls()
        self.lateness: list[float] = []

    def add(self, proto, n: int, measured: bool) -> None:
        now = time.monotonic()
        s = {"proto": proto, "left": n, "n": n, "arrival": now, "times": [], "measured": measured}
        self.loop.call_at(now + self.ttft, self.emit, s, now + self.ttft)

    def emit(self, s: dict, due: float) -> None:
        tr = s["proto"].transport
        if tr is None or tr.is_closing():
            return
        t = time.monotonic()
        tr.write(token_event(s["n"] - s["left"]))
        if s["measured"]:
            s["times"].append(t)
            self.lateness.append(t - due)
        s["left"] -= 1
        if s["left"] == 0:
            tr.write(tail_events(4, s["n"]))
            if s["measured"]:
                self.ttfts.append(s["times"][0] - s["arrival"])
                self.itl.add_times(s["times"])
            return
        self.loop.call_at(due + self.interval, self.emit, s, due + self.interval)

    def stats(self) -> dict:
        from srt_agent.loadgen.metrics import percentile

        tt = sorted(x * 1000 for x in self.ttfts)
        late = sorted(x * 1000 for x in self.lateness)
        return {"requests": len(tt), "median_ttft_ms": percentile(tt, 50), "p99_ttft_ms": percentile(tt, 99),
                "median_itl_ms": self.itl.percentile(50) * 1000, "p99_itl_ms": self.itl.percentile(99) * 1000,
                "median_lateness_ms": percentile(late, 50), "p99_lateness_ms": percentile(late, 99),
                "max_lateness_ms": late[-1] if late else 0.0}


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
            clients = [("srt-loadgen", lambda cfg=cfg: run_point(cfg))]
            if conc in naive_at:
                clients.append(("naive", lambda url=url, conc=conc, n=n: run_naive(url, args.isl, args.osl, conc, n)))
            for name, run in clients:
                if args.server == "builtin":
                    http_json(url + "/reset", "POST")
                else:
                    before = sim_metrics(url)
                r = run()
                truth = http_json(url + "/stats") if args.server == "builtin" else \
                    sim_truth(interval, before, sim_metrics(url))
                rows.append((name, conc, interval, r, truth))
                report(rows[-1])
    print("\n| client | C | step ms | TTFT p50 / p99 ms (truth) | ITL p50 / p99 ms (truth) | "
          "server lateness ms | client CPU | warnings |")
    print("|---|---|---|---|---|---|---|---|")
    for name, conc, interval, r, t in rows:
        late = (f"p50 {fmt(t['median_lateness_ms'], '.2f')}, p99 {fmt(t['p99_lateness_ms'], '.2f')}"
                if t.get("mean_lateness_ms") is None else
                f"mean {t['mean_lateness_ms']:.2f}, max {t['max_lateness_ms']:.1f}")
        print(f"| {name} | {conc} | {interval:g} | {r['median_ttft_ms']:.1f} / {r['p99_ttft_ms']:.1f} "
              f"({fmt(t['median_ttft_ms'])} / {fmt(t['p99_ttft_ms'])}) | {r['median_itl_ms']:.2f} / "
              f"{r['p99_itl_ms']:.2f} ({fmt(t['median_itl_ms'], '.2f')} / {fmt(t['p99_itl_ms'], '.2f')}) | {late} | "
              f"{', '.join(f'{c:.2f}' for c in r['client_cpu'])} | {len(r.get('client_warnings', []))} |")


def fmt(x, spec=".1f") -> str:
    return "-" if x is None else format(x, spec)


def report(row) -> None:
    name, conc, interval, r, t = row
    late = (f"server late p50/p99 {fmt(t['median_lateness_ms'], '.2f')}/{fmt(t['p99_lateness_ms'], '.2f')} ms"
            if t.get("mean_lateness_ms") is None else
            f"server late mean {t['mean_lateness_ms']:.2f} ms, max {t['max_lateness_ms']:.1f} ms, "
            f"{t['late_pass_fraction']:.0%} of passes late")
    print(f"{name:11s} C={conc:5d} step {interval:g} ms: completed {r['completed']}  "
          f"TTFT p50/p99 {r['median_ttft_ms']:.1f}/{r['p99_ttft_ms']:.1f} ms (truth {fmt(t['median_ttft_ms'])}/"
          f"{fmt(t['p99_ttft_ms'])})  ITL p50/p99 {r['median_itl_ms']:.2f}/{r['p99_itl_ms']:.2f} ms (truth "
          f"{fmt(t['median_itl_ms'], '.2f')}/{fmt(t['p99_itl_ms'], '.2f')})  {late}  client cpu {r['client_cpu']}  "
          f"warnings {r.get('client_warnings', [])}", flush=True)


def sim_args(port: int, interval: float, args) -> list[str]:
    """A simulated SGLang worker with a fixed decode step and prefill made near-free."""
    return ["--host", "127.0.0.1", "--port", str(port), "--model-path", "srt-loadgen-fidelity",
            "--served-model-name", "m", "--sim-decode-step-ms", str(interval),
            "--sim-decode-step-ms-per-request", "0", "--sim-prefill-tokens-per-s-per-gpu", "1e12",
            "--max-running-requests", "65536", "--max-prefill-tokens", str(1 << 30), "--log-level", "warning"]


def sim_metrics(url: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.split("{")[0], float(line.rsplit(" ", 1)[1])
            out[name] = value
    return out


def sim_truth(interval: float, before: dict, after: dict) -> dict:
    """What the sim was told to do, and how late its passes actually ran (counters, so whole run).

    Truth: ITL = one decode step (prefill passes of the next arrivals, near-free here, can
    stretch it slightly); TTFT = the wait for the running decode pass (0..step) + a prefill pass.
    """
    d = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    passes = d.get("srt_sim:forward_passes_total", 0.0) or 1.0
    return {"median_ttft_ms": None, "p99_ttft_ms": interval, "median_itl_ms": interval, "p99_itl_ms": interval,
            "median_lateness_ms": None, "mean_lateness_ms": 1000 * d.get("srt_sim:lateness_seconds_total", 0) / passes,
            "p99_lateness_ms": None, "max_lateness_ms": 1000 * after.get("srt_sim:lateness_seconds_max", 0.0),
            "late_pass_fraction": d.get("srt_sim:late_passes_total", 0.0) / passes}


if __name__ == "__main__":
    main()
