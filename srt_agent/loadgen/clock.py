"""The multi-node client's wire format and clock-offset estimate.

Messages are JSON objects, each preceded by its length (4 bytes, big endian), on one TCP
connection per client node to the coordinator. Nodes do not share a clock: each node measures the
offset of the coordinator's monotonic clock from its own, NTP style, over that connection:

    node sends ping at t0 (node clock); coordinator answers with its clock t1; node receives at t2
    offset = t1 - (t0 + t2) / 2        (coordinator clock = node clock + offset)
    error <= rtt / 2, rtt = t2 - t0

and keeps the sample with the smallest round trip (the least queueing, hence the tightest bound).
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Callable, Sequence

from srt_agent.errors import BenchmarkError

PINGS = 16
_LEN = struct.Struct(">I")
MAX_MESSAGE = 1 << 31


def send_msg(sock: socket.socket, msg: dict) -> None:
    data = json.dumps(msg, separators=(",", ":"), allow_nan=False).encode()
    sock.sendall(_LEN.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise BenchmarkError("the load-generator peer closed the connection")
        buf += chunk
    return bytes(buf)


def recv_msg(sock: socket.socket) -> dict:
    (n,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if n > MAX_MESSAGE:
        raise BenchmarkError(f"load-generator message of {n} bytes is too large")
    msg = json.loads(_recv_exact(sock, n))
    if not isinstance(msg, dict) or "t" not in msg:
        raise BenchmarkError("malformed load-generator message")
    return msg


def estimate_offset(samples: Sequence[tuple[float, float, float]]) -> tuple[float, float]:
    """(offset, rtt) from (t0, t1, t2) samples: the minimum-round-trip sample's midpoint estimate."""
    if not samples:
        raise BenchmarkError("no clock samples")
    t0, t1, t2 = min(samples, key=lambda s: s[2] - s[0])
    return t1 - (t0 + t2) / 2.0, t2 - t0


def measure_offset(sock: socket.socket, clock: Callable[[], float], pings: int = PINGS) -> tuple[float, float]:
    """Ping the coordinator `pings` times over sock; (offset, rtt) of its clock from `clock`."""
    samples = []
    for i in range(pings):
        t0 = clock()
        send_msg(sock, {"t": "ping", "n": i})
        reply = recv_msg(sock)
        t2 = clock()
        if reply.get("t") != "pong" or reply.get("n") != i:
            raise BenchmarkError(f"unexpected clock reply {reply.get('t')!r}")
        samples.append((t0, float(reply["clock"]), t2))
    return estimate_offset(samples)
