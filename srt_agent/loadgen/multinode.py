"""python -m srt_agent.loadgen.multinode: one benchmark point from several client nodes.

The coordinator (this module, on the agent's node) listens on a TCP port, starts one
`python -m srt_agent.loadgen.node` per client node (one srun step over the client nodes, built by
srt_agent.srun; plain subprocesses for the local executor), waits until every node has warmed up
and measured its clock offset (node.py), picks one start instant on its own clock and sends it to
every node, then merges every node's records (already on its clock) into one result with the same
keys as a single-node run_point result, plus `client_nodes`: per-node statistics (share, clock
offset and round trip, client lag, CPU). Arguments: those of `python -m srt_agent.loadgen`, plus
--client-nodes, --executor, --bind, --servers, --max-connections-per-pair.
"""

from __future__ import annotations

import datetime
import os
import queue
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

from srt_agent.errors import BenchmarkError, SrtError

from .clock import recv_msg, send_msg
from .config import LoadConfig
from .metrics import summarize
from .node import RECORD_FIELDS, TOKEN_ENV, config_from_args
from .records import ItlHistogram, RequestRecord
from .runner import write_result
from .config import parser as loadgen_parser
from srt_agent.rundir_pids import guarded
from srt_agent.srun import srun_command
from .__main__ import format_summary
from .validity import verdict

START_DELAY_S = 0.5  # from the start decision to the start instant, plus twice the slowest round trip
CONNECT_TIMEOUT_S = 600.0
PHASE_GRACE_S = 30.0  # the coordinator's limit per phase: the nodes' --phase-timeout plus this
COORDINATOR_ONLY = ("--client-nodes", "--executor", "--bind", "--out")


def parser():

    p = loadgen_parser()
    p.prog = "python -m srt_agent.loadgen.multinode"
    p.add_argument("--client-nodes", required=True, help="NAME,... the nodes the client runs on")
    p.add_argument("--executor", choices=("slurm", "local"), default="slurm")
    p.add_argument("--bind", default="127.0.0.1", help="address the coordinator listens on (the agent's node)")
    p.add_argument("--servers", required=True, help="HOST:PORT,... every address the endpoint offers")
    p.add_argument("--max-connections-per-pair", type=int, default=25_000)
    return p


def node_argv(argv: list[str]) -> list[str]:
    """The loadgen arguments the nodes get: argv without the coordinator's own options."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in COORDINATOR_ONLY:
            skip = "=" not in a
            continue
        out.append(a)
    return out


def launch_nodes(names: list[str], executor: str, command: list[str], token: str) -> Iterator[subprocess.Popen]:
    """The node processes, one by one (the caller keeps each as it starts, so a failed start leaks none)."""
    env = {**os.environ, TOKEN_ENV: token}
    if executor == "local":
        for i, name in enumerate(names):
            yield subprocess.Popen(guarded(command), stdin=subprocess.DEVNULL,
                                   env={**env, "SRT_LOADGEN_NODE_INDEX": str(i), "SRT_LOADGEN_NODE_NAME": name})
        return
    argv = srun_command(command, nodes=names, job_name="srt-loadgen")
    print(f"load-generator nodes: {shlex.join(argv)}", flush=True)
    yield subprocess.Popen(guarded(argv), stdin=subprocess.DEVNULL, env=env)


class Coordinator:
    """Accepts the nodes, answers their clock pings at once (one thread per node), relays the rest."""

    def __init__(self, server: socket.socket, count: int, token: str, procs: list[subprocess.Popen]) -> None:
        self.server, self.count, self.token, self.procs = server, count, token, procs
        self.conns: dict[int, socket.socket] = {}
        self.locks: dict[int, threading.Lock] = {}
        self.names: dict[int, str] = {}
        self.inbox: queue.Queue = queue.Queue()

    def accept_all(self, timeout: float = CONNECT_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        self.server.settimeout(0.5)
        while len(self.conns) < self.count:
            self._check_procs()
            if time.monotonic() > deadline:
                raise BenchmarkError(f"{self.count - len(self.conns)} load-generator node(s) did not connect "
                                     f"within {timeout:.0f} s")
            try:
                conn, _ = self.server.accept()
            except socket.timeout:
                continue
            conn.settimeout(10.0)  # a node says hello as soon as it connects
            try:
                hello = recv_msg(conn)
            except (OSError, SrtError):
                conn.close()
                continue
            ours = secrets.compare_digest(str(hello.get("token", "")), self.token)
            if hello.get("t") == "error" and ours:
                raise BenchmarkError(f"load-generator node {hello.get('index')} ({hello.get('node')}) failed:\n"
                                     f"{hello.get('message')}")
            index = hello.get("index")
            if (hello.get("t") != "hello" or not ours or not isinstance(index, int)
                    or not 0 <= index < self.count or index in self.conns):
                conn.close()  # not one of ours
                continue
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns[index], self.locks[index], self.names[index] = conn, threading.Lock(), str(hello.get("node"))
            threading.Thread(target=self._serve, args=(index,), daemon=True).start()

    def _serve(self, index: int) -> None:
        conn = self.conns[index]
        try:
            while True:
                msg = recv_msg(conn)
                if msg["t"] == "ping":
                    with self.locks[index]:
                        send_msg(conn, {"t": "pong", "n": msg.get("n"), "clock": time.monotonic()})
                    continue
                self.inbox.put((index, msg))
                if msg["t"] in ("done", "error"):
                    return
        except (OSError, SrtError) as exc:
            self.inbox.put((index, {"t": "lost", "message": str(exc)}))

    def _check_procs(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None and proc.returncode != 0:
                raise BenchmarkError(f"the load-generator node step exited with code {proc.returncode} "
                                     "(see logs/benchmark.log)")

    def gather(self, kind: str, timeout: float | None) -> dict[int, dict]:
        got: dict[int, dict] = {}
        deadline = None if timeout is None else time.monotonic() + timeout
        while len(got) < self.count:
            if deadline is not None and time.monotonic() > deadline:
                raise BenchmarkError(f"load-generator nodes did not report {kind!r} within {timeout:.0f} s")
            try:
                index, msg = self.inbox.get(timeout=0.5)
            except queue.Empty:
                self._check_procs()
                continue
            where = f"load-generator node {index} ({self.names.get(index)})"
            if msg["t"] == "error":
                raise BenchmarkError(f"{where} failed:\n{msg.get('message')}")
            if msg["t"] == "lost":
                raise BenchmarkError(f"{where} lost its connection: {msg.get('message')}")
            if msg["t"] != kind:
                raise BenchmarkError(f"{where} sent {msg['t']!r}, expected {kind!r}")
            got[index] = msg
        return got

    def start(self, ready: dict[int, dict]) -> float:
        at = time.monotonic() + START_DELAY_S + 2 * max(float(m["rtt"]) for m in ready.values())
        for index, conn in self.conns.items():
            with self.locks[index]:
                send_msg(conn, {"t": "start", "at": at})
        return at


def run_multinode(config: LoadConfig, names: list[str], executor: str, bind: str, node_command: list[str],
                  phase_timeout: float | None = None) -> dict:
    """Run one point over the client nodes `names`; the merged result dict (see merge)."""
    config.validate()
    token = secrets.token_hex(16)
    server = socket.create_server((bind, 0), backlog=max(16, len(names)))
    host, port = server.getsockname()[:2]
    command = [*node_command, "--coordinator", f"{host}:{port}", "--node-count", str(len(names))]
    procs: list[subprocess.Popen] = []
    coord = Coordinator(server, len(names), token, procs)
    try:
        procs.extend(launch_nodes(names, executor, command, token))
        coord.accept_all()
        ready = coord.gather("ready", phase_timeout)
        start = coord.start(ready)
        done = coord.gather("done", phase_timeout)
        for proc in procs:  # the nodes exit once they sent their records; a straggler is stopped below
            try:
                proc.wait(timeout=60.0)
            except subprocess.TimeoutExpired:
                pass
    finally:
        server.close()
        for conn in coord.conns.values():
            conn.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    return merge(config, start, [done[i] for i in sorted(done)])


def _records(rows: list[list]) -> list[RequestRecord]:
    return [RequestRecord(**dict(zip(RECORD_FIELDS, row))) for row in rows]


def _itl(data: dict) -> ItlHistogram:
    h = ItlHistogram()
    h.counts, h.n, h.total, h.total_sq = Counter({int(k): int(v) for k, v in data["counts"]}), data["n"], \
        data["total"], data["total_sq"]
    return h


def merge(config: LoadConfig, start: float, nodes: list[dict]) -> dict:
    """One result from every node's `done` message (times on the coordinator's clock, start too):
    the keys of a single-node run_point result, plus `client_nodes`."""
    records, per_node = [], []
    itl = ItlHistogram()
    rate = config.request_rate
    for node in nodes:
        recs = _records(node["records"])
        records += recs
        node_itl = ItlHistogram()
        for data in node["itl"]:
            node_itl.merge(_itl(data))
        itl.merge(node_itl)
        s = summarize(recs, start=start, max_concurrency=node["concurrency"], itl=node_itl,
                      client_cpu=node["cpu"], loop_lag_p99_ms=max(node["loop_lag_p99_ms"], default=0.0))
        per_node.append({
            "node": node["node"], "index": node["index"], "concurrency": node["concurrency"],
            "servers": node["servers"], "processes": len(node["cpu"]),
            "clock_offset_s": node["offset"], "clock_rtt_ms": node["rtt"] * 1000.0,
            "num_requests": s["num_requests"], "completed": s["completed"], "failed": s["failed"],
            "warmup_failed": node["warmup_failed"], "output_throughput": s["output_throughput"],
            "median_ttft_ms": s["median_ttft_ms"], "p99_ttft_ms": s["p99_ttft_ms"], "p99_itl_ms": s["p99_itl_ms"],
            "p99_client_lag_ms": s["p99_client_lag_ms"], "p99_loop_lag_ms": s["p99_loop_lag_ms"],
            "client_cpu": s["client_cpu"], "client_peak_rss_mb": node["peak_rss_mb"]})
    out = summarize(records, start=start, max_concurrency=config.concurrency, request_rate=rate, itl=itl,
                    total_gpus=config.total_gpus, decode_gpus=config.decode_gpus,
                    client_cpu=[c for node in nodes for c in node["cpu"]],
                    loop_lag_p99_ms=max((v for node in nodes for v in node["loop_lag_p99_ms"]), default=0.0))
    wall = time.time() - time.monotonic()  # the coordinator's monotonic -> unix seconds
    out.update({
        "measured_start_unix": round(start + wall, 3),
        "measured_end_unix": round(start + out["duration"] + wall, 3),
        "model": config.model, "isl": config.isl, "osl": config.osl,
        "num_prompts": config.resolved_num_prompts(), "warmup_prompts": config.num_warmup(),
        "warmup_failed": sum(node["warmup_failed"] for node in nodes),
        "random_range_ratio": config.random_range_ratio,
        "prompt_kind": "ids" if config.tokenizer is None else "text", "seed": config.seed,
        "processes": sum(len(node["cpu"]) for node in nodes), "expected_itl_ms": config.expected_itl_ms,
        "client_peak_rss_mb": [v for node in nodes for v in node["peak_rss_mb"]],
        "http_client": config.http, "client": "srt-loadgen",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "client_nodes": per_node,
    })
    return out


def main(argv: list[str] | None = None) -> int:

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    config = config_from_args(args)
    names = [n for n in args.client_nodes.split(",") if n]
    node_cmd = [sys.executable, "-m", "srt_agent.loadgen.node", *node_argv(argv)]
    try:
        # the nodes stop themselves at --phase-timeout and say why; the coordinator's own limit, a
        # grace later, catches a node that hangs without a word
        limit = None if config.phase_timeout is None else config.phase_timeout + PHASE_GRACE_S
        result = run_multinode(config, names, args.executor, args.bind, node_cmd, phase_timeout=limit)
    except SrtError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    problem = verdict(result, config.max_failed_fraction)  # the one validity check, recorded in the result
    if args.out:
        write_result(result, args.out)
    print(format_summary(result))
    for n in result["client_nodes"]:
        print(f"node {n['index']} {n['node']}: concurrency {n['concurrency']}  completed {n['completed']}  "
              f"clock offset {n['clock_offset_s']:+.6f} s (rtt {n['clock_rtt_ms']:.3f} ms)  "
              f"client lag p99 {n['p99_client_lag_ms']:.2f} ms  servers {', '.join(n['servers'])}")
    if problem is not None:
        print(f"INVALID: {problem}", file=sys.stderr)
        return problem.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
