"""How many streamed tokens per second one simulated SGLang server process sustains on one core.

    python benchmarks/sim_engine.py [--concurrency 64 256 1024] [--osl 256] [--seconds 5]

Starts `python -m srt_agent.sim` in zero-latency mode (no prefill time, no decode step time)
pinned to CPU 0, and drives it from a separate client process pinned to CPU 1 (when the machine
has two cores). The client is deliberately lean (raw asyncio sockets, keep-alive connections,
one streamed /v1/completions request after another per connection, ignore_eos, max_tokens=OSL)
so the server is the bottleneck. Tokens are counted in the SSE chunks the client receives
during a measurement window after a warm-up; server CPU comes from /proc/PID/stat over the same
window. Prints a table; docs/simulated-engine.md records the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time
import urllib.request

PATTERN = b'"choices":[{"index":0,"text":'
TAIL = len(PATTERN) - 1
EOF_MARK = b"[DONE]\n\n\r\n0\r\n\r\n"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > cpu:
        os.sched_setaffinity(0, {cpu})


async def _stream_forever(host: str, port: int, body: bytes, counter: list[int], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = (b"POST /v1/completions HTTP/1.1\r\nHost: %b:%d\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%b" % (host.encode(), port, len(body), body))
    try:
        while not stop.is_set():
            writer.write(request)
            tail = b""
            while True:
                data = await reader.read(1 << 18)
                if not data:
                    raise ConnectionError("server closed the connection")
                buf = tail + data
                counter[0] += buf.count(PATTERN)
                if buf.endswith(EOF_MARK):
                    break
                tail = buf[-max(TAIL, len(EOF_MARK)):]
    finally:
        writer.close()


async def _client(host: str, port: int, concurrency: int, osl: int, warmup: float, seconds: float) -> dict:
    body = json.dumps({"model": "sim", "prompt": "hello world", "max_tokens": osl, "ignore_eos": True,
                       "stream": True}).encode()
    counter = [0]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_stream_forever(host, port, body, counter, stop)) for _ in range(concurrency)]
    await asyncio.sleep(warmup)
    c0, t0, cpu0 = counter[0], time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    c1, t1, cpu1 = counter[0], time.perf_counter(), time.process_time()
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"tokens": c1 - c0, "seconds": t1 - t0, "client_cpu_s": cpu1 - cpu0}


def _client_process(host: str, port: int, concurrency: int, osl: int, warmup: float, seconds: float, queue) -> None:
    pin(1)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    queue.put(asyncio.run(_client(host, port, concurrency, osl, warmup, seconds)))


def wait_healthy(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not become healthy")


def late_passes(port: int) -> tuple[int, float]:
    """(late passes, max lateness in s) from the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line and not line.startswith("#")}
    return int(values["srt_sim:late_passes_total"]), values["srt_sim:lateness_seconds_max"]


def run_point(port: int, concurrency: int, osl: int, warmup: float, seconds: float, event_loop: str,
              stream_interval: int, step_ms: float = 0.0) -> dict:
    cmd = [sys.executable, "-m", "srt_agent.sim", "--host", "127.0.0.1", "--port", str(port),
           "--sim-prefill-tokens-per-s-per-gpu", "0", "--sim-decode-step-ms", str(step_ms),
           "--sim-decode-step-ms-per-request", "0", "--sim-kv-transfer-ms", "0",
           "--max-running-requests", str(max(concurrency, 1)), "--stream-interval", str(stream_interval),
           "--sim-event-loop", event_loop, "--log-level", "warning"]
    server = subprocess.Popen(cmd)
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(server.pid, {0})
    try:
        wait_healthy(f"http://127.0.0.1:{port}")
        queue = mp.get_context("spawn").Queue()
        client = mp.get_context("spawn").Process(
            target=_client_process, args=("127.0.0.1", port, concurrency, osl, warmup, seconds, queue))
        client.start()
        time.sleep(warmup)
        s0, w0 = cpu_seconds(server.pid), time.perf_counter()
        result = queue.get(timeout=warmup + seconds + 60)
        s1, w1 = cpu_seconds(server.pid), time.perf_counter()
        client.join(10)
        late, late_max = late_passes(port)
    finally:
        server.terminate()
        server.wait(10)
    tok_s = result["tokens"] / result["seconds"]
    server_cpu = (s1 - s0) / (w1 - w0)
    return {"concurrency": concurrency, "osl": osl, "stream_interval": stream_interval, "event_loop": event_loop,
            "decode_step_ms": step_ms, "late_passes": late, "lateness_max_s": late_max,
            "tokens": result["tokens"], "tok_per_s": tok_s, "server_cpu": server_cpu,
            "server_us_per_token": (server_cpu * 1e6 / tok_s) if tok_s else float("nan"),
            "client_cpu": result["client_cpu_s"] / result["seconds"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--osl", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--port", type=int, default=30900)
    parser.add_argument("--event-loop", choices=["auto", "uvloop", "asyncio"], nargs="+", default=["auto"])
    parser.add_argument("--stream-interval", type=int, default=1)
    parser.add_argument("--decode-step-ms", type=float, default=0.0,
                        help="0 (default) = zero-latency mode; > 0 checks that the server keeps a real schedule")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    rows = []
    print(f"{'loop':>8} {'step ms':>7} {'conc':>6} {'osl':>5} {'tokens/s':>10} {'server CPU':>10} {'us/token':>9} "
          f"{'client CPU':>10} {'late passes':>11}")
    for loop in args.event_loop:
        for c in args.concurrency:
            row = run_point(args.port, c, args.osl, args.warmup, args.seconds, loop, args.stream_interval,
                            args.decode_step_ms)
            rows.append(row)
            print(f"{loop:>8} {args.decode_step_ms:>7g} {c:>6} {args.osl:>5} {row['tok_per_s']:>10.0f} "
                  f"{row['server_cpu']:>10.0%} {row['server_us_per_token']:>9.1f} {row['client_cpu']:>10.0%} "
                  f"{row['late_passes']:>11}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
