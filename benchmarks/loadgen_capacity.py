"""Client capacity: how many streamed tokens/s and requests/s the load generator sustains.

The server answers every request at once with its whole SSE stream (OSL events, one chunk per
event, SGLang-shaped JSON, usage chunk, [DONE]), so the server spends a few tens of microseconds
per request and the client's per-event work is what limits throughput. It runs in its own process
(uvloop, raw asyncio protocol) on 127.0.0.1.

    python benchmarks/loadgen_capacity.py [--port 31500] [--osl 256] [--concurrency 256]

Clients compared on the same server, one after the other:
    lean       srt_agent.loadgen, httptools protocol, uvloop       (the default)
    lean-asyncio  the same on the stock asyncio loop
    aiohttp    srt_agent.loadgen with aiohttp (one session per process, limit=0), uvloop
    naive      single-process aiohttp, new session per request, semaphore: the sa-bench lineage
This module also holds the tiny raw HTTP servers and the naive client that
benchmarks/loadgen_fidelity.py reuses. Not a test: prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

MAX_TOKENS = re.compile(rb'"max_tokens":\s*(\d+)')
SSE_HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")


def sse_chunk(obj) -> bytes:
    data = b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def token_event(i: int) -> bytes:
    return sse_chunk({"id": "cmpl-0123456789abcdef", "object": "text_completion", "created": 1700000000,
                      "model": "m", "choices": [{"index": 0, "text": f" tok{i % 100}", "logprobs": None,
                                                 "finish_reason": None, "matched_stop": None}], "usage": None})


def tail_events(prompt_tokens: int, n: int) -> bytes:
    usage = {"id": "cmpl-0123456789abcdef", "object": "text_completion", "created": 1700000000, "model": "m",
             "choices": [], "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n,
                                      "completion_tokens": n}}
    return sse_chunk(usage) + sse_chunk(b"[DONE]") + b"0\r\n\r\n"


class HttpServerProtocol(asyncio.Protocol):
    """Minimal HTTP/1.1 keep-alive request framing (Content-Length bodies only)."""

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            i = head.find(b"content-length:")
            length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            self.request(head.split(b" ", 2)[1], body)

    def request(self, path: bytes, body: bytes):
        raise NotImplementedError

    def json_response(self, obj):
        data = json.dumps(obj).encode()
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(data), data))


class ZeroLatencyProtocol(HttpServerProtocol):
    cache: dict[int, bytes] = {}

    def request(self, path, body):
        n = int(MAX_TOKENS.search(body).group(1))
        resp = self.cache.get(n)
        if resp is None:
            resp = self.cache[n] = SSE_HEAD + b"".join(token_event(i) for i in range(n)) + tail_events(0, n)
        self.transport.write(resp)


def serve(protocol_factory, port: int) -> None:
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(protocol_factory, "127.0.0.1", port, backlog=16384))
    print(f"serving on 127.0.0.1:{port}", flush=True)
    try:
        loop.run_until_complete(server.serve_forever())
    except KeyboardInterrupt:
        pass


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not come up")


@contextmanager
def server_process(args: list[str], port: int):
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


# ---- the naive baseline: what field-facts describes (sa-bench lineage) ---------------------------

async def naive_request(url: str, payload: dict, sem: asyncio.Semaphore, out: list) -> None:
    import aiohttp

    async with sem:
        # a new session (and connection) per request; the clock starts after the semaphore, so
        # time spent waiting in the client is not counted (as in the original)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=6 * 3600)) as session:
            st = time.perf_counter()
            ttft, itls, last, n, ok = 0.0, [], st, 0, False
            try:
                async with session.post(url, json=payload) as resp:
                    if resp.status == 200:
                        async for raw in resp.content:
                            chunk = raw.strip()
                            if not chunk:
                                continue
                            chunk = chunk.removeprefix(b"data: ")
                            if chunk == b"[DONE]":
                                continue
                            data = json.loads(chunk)
                            now = time.perf_counter()
                            if data.get("choices") and data["choices"][0].get("text"):
                                if not ttft:
                                    ttft = now - st
                                else:
                                    itls.append(now - last)
                                last = now
                            if data.get("usage"):
                                n = data["usage"]["completion_tokens"]
                        ok = True
            except aiohttp.ClientError:
                ok = False
            out.append((ok, ttft, itls, time.perf_counter() - st, n))


def run_naive(url: str, isl: int, osl: int, concurrency: int, num_prompts: int, seed: int = 0) -> dict:
    import random

    rng = random.Random(seed)
    payloads = [{"model": "m", "prompt": [rng.randrange(1000, 30000) for _ in range(isl)], "max_tokens": osl,
                 "stream": True, "stream_options": {"include_usage": True}, "ignore_eos": True,
                 "temperature": 0.0} for _ in range(num_prompts)]

    async def main():
        sem = asyncio.Semaphore(concurrency)
        out: list = []
        t0 = time.perf_counter()
        await asyncio.gather(*(naive_request(url + "/v1/completions", p, sem, out) for p in payloads))
        return out, time.perf_counter() - t0

    cpu0 = time.process_time()
    out, duration = asyncio.run(main())
    cpu = (time.process_time() - cpu0) / duration
    from srt_agent.loadgen.metrics import percentile

    ok = [o for o in out if o[0]]
    ttfts = sorted(o[1] * 1000 for o in ok)
    itls = sorted(x * 1000 for o in ok for x in o[2])
    return {"completed": len(ok), "duration": duration, "total_output_tokens": sum(o[4] for o in ok),
            "output_throughput": sum(o[4] for o in ok) / duration, "request_throughput": len(ok) / duration,
            "median_ttft_ms": percentile(ttfts, 50), "p99_ttft_ms": percentile(ttfts, 99),
            "median_itl_ms": percentile(itls, 50), "p99_itl_ms": percentile(itls, 99), "client_cpu": [round(cpu, 3)]}


# ---- the benchmark ------------------------------------------------------------------------------

def run_client(name: str, url: str, isl: int, osl: int, concurrency: int, num_prompts: int,
               processes: int) -> dict:
    from srt_agent.loadgen import LoadConfig, run_point

    if name == "naive":
        return run_naive(url, isl, osl, concurrency, num_prompts)
    http = "aiohttp" if name.startswith("aiohttp") else "lean"
    cfg = LoadConfig(url=url, model="m", isl=isl, osl=osl, concurrency=concurrency, num_prompts=num_prompts,
                     warmup_multiplier=1.0, processes=processes, http=http,
                     use_uvloop=not name.endswith("asyncio"))
    return run_point(cfg)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=31500)
    ap.add_argument("--isl", type=int, default=128)
    ap.add_argument("--osl", type=int, default=256)
    ap.add_argument("--concurrency", default="256")
    ap.add_argument("--requests-per-slot", type=int, default=20)
    ap.add_argument("--clients", default="lean,lean-asyncio,aiohttp,naive")
    ap.add_argument("--processes", default="1,2", help="worker processes to try for the srt-loadgen clients")
    ap.add_argument("--serve-zero", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_zero:
        serve(ZeroLatencyProtocol, args.serve_zero)
        return
    url = f"http://127.0.0.1:{args.port}"
    rows = []
    with server_process([os.path.abspath(__file__), "--serve-zero", str(args.port)], args.port):
        for conc in map(int, args.concurrency.split(",")):
            n = conc * args.requests_per_slot
            for name in args.clients.split(","):
                for k in ([1] if name == "naive" else map(int, args.processes.split(","))):
                    r = run_client(name, url, args.isl, args.osl, conc, n, k)
                    rows.append((name, k, conc, r))
                    print(f"{name:13s} procs={k} C={conc:5d}  {r['output_throughput']:>10,.0f} tok/s  "
                          f"{r['request_throughput']:>8,.0f} req/s  completed {r['completed']}/{n}  "
                          f"client cpu {r['client_cpu']}  {cpu_per_token(r):.2f} cpu-us/token", flush=True)
    print("\n| client | processes | C | output tok/s | req/s | client CPU (cores, per process) | client CPU us/token |")
    print("|---|---|---|---|---|---|---|")
    for name, k, conc, r in rows:
        print(f"| {name} | {k} | {conc} | {r['output_throughput']:,.0f} | {r['request_throughput']:,.0f} | "
              f"{', '.join(f'{c:.2f}' for c in r['client_cpu'])} | {cpu_per_token(r):.2f} |")


def cpu_per_token(r: dict) -> float:
    """Client CPU time per streamed token (microseconds): what the client costs, whatever else runs."""
    return 1e6 * sum(r["client_cpu"]) / r["output_throughput"] if r["output_throughput"] else float("nan")


if __name__ == "__main__":
    main()
