"""python -m srt_agent.loadgen.node: one client node of a multi-node point (started by multinode.py).

The node runs its share of the point (concurrency, measured and warmup requests: contiguous
slices, the same prompts a single-node run sends) on its own worker processes, each worker on one
server address. Its life, over one TCP connection to the coordinator (clock.py's messages):

    node -> hello {token, index, node}        at once
    coordinator tells nothing until every node has warmed up:
    node -> ping/pong x 16                    clock offset (min round trip), after the warmup
    node -> ready {offset, rtt, warmup_failed}
    coordinator -> start {at}                 one instant, on the coordinator's clock
    node -> done {records, itl, ...}          every time already on the coordinator's clock

Test seam: SRT_LOADGEN_CLOCK_SKEW_S="S0,S1,..." makes node i behave as if its clock ran S_i seconds
ahead (docs/benchmarking.md, "Across nodes"); the measured offset must cancel it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import sys
import time
import traceback

from ..errors import BenchmarkError
from .clock import measure_offset, recv_msg, send_msg
from .config import LoadConfig, from_args
from .config import parser as loadgen_parser
from .prompts import build_workload
from .runner import WARMUP_INDEX_BASE, _recv_all, _split, warm_up, worker_processes, worker_spec
from .runner import _share as share
from .records import RequestRecord

TOKEN_ENV = "SRT_LOADGEN_TOKEN"
SKEW_ENV = "SRT_LOADGEN_CLOCK_SKEW_S"
INDEX_ENV = "SRT_LOADGEN_NODE_INDEX"  # local executor; under srun SLURM_PROCID
NAME_ENV = "SRT_LOADGEN_NODE_NAME"  # local executor; under srun SLURMD_NODENAME
TIME_FIELDS = ("scheduled", "ready", "sent", "first_token", "end")


def config_from_args(args) -> LoadConfig:
    """The LoadConfig of `python -m srt_agent.loadgen` arguments (its parser, config.parser)."""
    return from_args(args)


def parse_servers(text: str) -> list[tuple[str, int]]:
    out = []
    for item in text.split(","):
        host, _, port = item.rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def node_slices(config: LoadConfig, nodes: int) -> list[tuple[int, list[int], list[int]]]:
    """(concurrency, measured indices, warmup indices) of every node: contiguous, proportional."""
    conc = share(config.concurrency, nodes)
    n, n_warm = config.resolved_num_prompts(), config.num_warmup()
    measured = _split(list(range(n)), conc)
    warmup = _split(list(range(WARMUP_INDEX_BASE, WARMUP_INDEX_BASE + n_warm)), conc)
    return list(zip(conc, measured, warmup))


def worker_layout(slots: int, processes: int, servers: list[tuple[str, int]], limit: int) -> list[tuple[int, tuple]]:
    """(slots, server) of each worker process: the node's slots split evenly over the servers
    (all of them, or as many as there are slots), then each server's over its workers."""
    s = max(1, min(len(servers), slots))
    per_worker_server = math.ceil(max(processes, s) / s)
    per_server = share(slots, s)
    if max(per_server) > limit:
        raise BenchmarkError(f"{max(per_server)} connections to one server address exceed the limit of {limit} "
                             "(benchmark.max_connections_per_pair): add client nodes or server addresses")
    out = []
    for j in range(per_worker_server):
        for i in range(s):
            n = share(per_server[i], per_worker_server)[j]
            if n:
                out.append((n, servers[i]))
    return out


def node_identity(args) -> tuple[int, str]:
    index = args.node_index if args.node_index is not None else int(
        os.environ.get(INDEX_ENV) or os.environ.get("SLURM_PROCID") or 0)
    name = os.environ.get(NAME_ENV) or os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    return index, name


def injected_skew(index: int) -> float:
    text = os.environ.get(SKEW_ENV, "").strip()
    if not text:
        return 0.0
    values = [float(v) for v in text.split(",")]
    return values[index] if index < len(values) else 0.0


def run_node(args, sock: socket.socket, index: int, name: str, skew: float = 0.0) -> None:
    send_msg(sock, {"t": "hello", "token": os.environ.get(TOKEN_ENV, ""), "index": index, "node": name})
    config = config_from_args(args)
    config.validate()
    servers = parse_servers(args.servers)
    path = "/" + config.endpoint.lstrip("/")
    conc, measured, warmup = node_slices(config, args.node_count)[index]
    node_config = dataclasses.replace(config, concurrency=conc)
    layout = worker_layout(conc, node_config.resolved_processes(), servers, args.max_connections_per_pair)
    workload = build_workload(list(range(config.resolved_num_prompts())) + list(
        range(WARMUP_INDEX_BASE, WARMUP_INDEX_BASE + config.num_warmup())), config.isl, config.osl, seed=config.seed,
        random_range_ratio=config.random_range_ratio, tokenizer=config.tokenizer)
    weights = [n for n, _ in layout]
    m_parts, w_parts = _split(measured, weights), _split(warmup, weights)
    clock = (lambda: time.monotonic() + skew) if skew else time.monotonic
    specs = [worker_spec(config, index * 1000 + i, host, port, path, slots, w_parts[i], m_parts[i], workload)
             for i, (slots, (host, port)) in enumerate(layout)]
    with worker_processes(specs) as (pipes, procs):
        warmed = warm_up(pipes, procs, timeout=config.phase_timeout)
        offset, rtt = measure_offset(sock, clock)
        send_msg(sock, {"t": "ready", "offset": offset, "rtt": rtt, "warmup_failed": sum(m[1] for m in warmed)})
        msg = recv_msg(sock)
        if msg["t"] != "start":
            raise BenchmarkError(f"expected the start instant, got {msg['t']!r}")
        start = float(msg["at"]) - offset - skew  # coordinator clock -> node clock -> this machine's monotonic
        for p in pipes:
            p.send(("measure", start))
        done = _recv_all(pipes, procs, "done", timeout=config.phase_timeout)
    shift = skew + offset  # this machine's monotonic -> node clock -> coordinator clock
    results = [m[1] for m in done]
    send_msg(sock, {
        "t": "done", "index": index, "node": name, "concurrency": conc, "offset": offset, "rtt": rtt,
        "servers": sorted({f"{h}:{p}" for _, (h, p) in layout}),
        "records": [record_row(r, shift) for res in results for r in res.records],
        "itl": [{"counts": list(res.itl.counts.items()), "n": res.itl.n, "total": res.itl.total,
                 "total_sq": res.itl.total_sq} for res in results],
        "cpu": [res.cpu_fraction for res in results], "loop_lag_p99_ms": [res.loop_lag_p99_ms for res in results],
        "peak_rss_mb": [res.peak_rss_mb for res in results], "warmup_failed": sum(m[1] for m in warmed)})


def record_row(rec, shift: float) -> list:
    row = []
    for f in RECORD_FIELDS:
        v = getattr(rec, f)
        row.append(v + shift if f in TIME_FIELDS and v else v)
    return row


def _record_fields() -> tuple[str, ...]:

    return tuple(f.name for f in dataclasses.fields(RequestRecord) if f.name != "chunk_times")


RECORD_FIELDS = _record_fields()


def parser():

    p = loadgen_parser()
    p.prog = "python -m srt_agent.loadgen.node"
    p.add_argument("--coordinator", required=True, help="HOST:PORT of the coordinator")
    p.add_argument("--node-count", type=int, required=True)
    p.add_argument("--node-index", type=int, help="default: $SRT_LOADGEN_NODE_INDEX, else $SLURM_PROCID")
    p.add_argument("--servers", required=True, help="HOST:PORT,... every address the endpoint offers")
    p.add_argument("--max-connections-per-pair", type=int, default=25_000)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    index, name = node_identity(args)
    host, _, port = args.coordinator.rpartition(":")
    sock = socket.create_connection((host.strip("[]"), int(port)), timeout=60.0)
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        run_node(args, sock, index, name, injected_skew(index))
        return 0
    except BaseException as exc:
        try:
            send_msg(sock, {"t": "error", "token": os.environ.get(TOKEN_ENV, ""), "index": index, "node": name,
                            "message": traceback.format_exc()})
        except OSError:
            pass
        print(f"load-generator node {index} ({name}) failed: {exc}", file=sys.stderr)
        return 1
    finally:
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
