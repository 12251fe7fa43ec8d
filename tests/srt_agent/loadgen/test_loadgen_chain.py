"""The closed loop's send path: a slot's next request is written from the protocol callback that
read the end of its previous response (no task wake-up in between), against the real local SSE
server of conftest.py, in this process (a Worker on its own event loop)."""

import asyncio
import time

import pytest

from srt_agent.loadgen import LoadConfig, run_point
from srt_agent.loadgen.prompts import build_workload
from srt_agent.loadgen.sse import _Conn
from srt_agent.loadgen.worker import Worker, WorkerSpec


class Wire:
    """Logs every write on the connections it wraps, and whether it happened inside that
    connection's data_received (and which call of it)."""

    def __init__(self) -> None:
        self.inside: dict[int, int] = {}  # id(conn) -> number of the data_received call running
        self.calls = 0
        self.writes: list[tuple[int, int | None, float]] = []  # (id(conn), call or None, time)


class _Transport:
    def __init__(self, wire: Wire, conn: _Conn, transport) -> None:
        self.wire, self.conn, self.t = wire, conn, transport

    def write(self, data: bytes) -> None:
        self.t.write(data)
        self.wire.writes.append((id(self.conn), self.wire.inside.get(id(self.conn)), time.monotonic()))

    def __getattr__(self, name):
        return getattr(self.t, name)


def watch(wire: Wire, conn: _Conn) -> None:
    conn.transport = _Transport(wire, conn, conn.transport)
    received = conn.data_received

    def data_received(data: bytes) -> None:
        wire.calls += 1
        wire.inside[id(conn)] = wire.calls
        try:
            received(data)
        finally:
            del wire.inside[id(conn)]

    conn.data_received = data_received


def spec(port: int, model: str, slots: int, n: int, timeout=None) -> WorkerSpec:
    measured = list(range(n))
    return WorkerSpec(worker_id=0, host="127.0.0.1", port=port, path="/v1/completions", model=model,
                      slots=slots, warmup=[], measured=measured, workload=build_workload(measured, 16, 4),
                      timeout=timeout)


async def closed_loop(s: WorkerSpec, wire: Wire | None = None):
    w = Worker(s)
    await w.open()
    try:
        if wire is not None:
            for slot in w.slots:
                watch(wire, slot.conn)
        return await w.closed_loop(w.prime(s.measured, time.monotonic()))
    finally:
        await w.close()


def test_next_request_is_written_by_the_callback_that_read_the_end(sse_server):
    wire = Wire()
    records = asyncio.run(closed_loop(spec(sse_server.port, "ok;ttft=2;itl=1", slots=2, n=10), wire))
    assert sorted(r.index for r in records) == list(range(10)) and all(r.ok for r in records)
    by_slot: dict[int, list] = {}
    for conn, call, _ in wire.writes:
        by_slot.setdefault(conn, []).append(call)
    assert len(by_slot) == 2 and sum(map(len, by_slot.values())) == 10
    for calls in by_slot.values():
        # the first wave is written before any response was read; every later request of the
        # slot inside the data_received call that completed the previous response
        assert calls[0] is None
        assert all(c is not None for c in calls[1:]), calls
    recs = sorted(records, key=lambda r: r.sent)
    for r in recs[2:]:  # closed loop: due at the previous response's end, sent without delay
        assert r.ready == r.scheduled and r.sent >= r.scheduled
        assert any(p.end == r.scheduled for p in recs), "scheduled is not a response's end"
        assert r.ttft is not None and r.ttft == r.first_token - r.scheduled


def test_chain_survives_a_server_that_closes_every_connection(sse_server):
    # Connection: close after each response: the chain cannot write on it, the slot's task
    # reconnects; every request is still sent once and completes
    before = sse_server.requests
    records = asyncio.run(closed_loop(spec(sse_server.port, "close;ttft=1;itl=1", slots=3, n=9)))
    assert sorted(r.index for r in records) == list(range(9))
    assert all(r.ok and r.output_tokens == 4 for r in records), [r.error for r in records]
    assert sse_server.requests - before == 9


def test_request_timeout_still_ends_a_chained_request(sse_server):
    t0 = time.monotonic()
    records = asyncio.run(closed_loop(spec(sse_server.port, "ok;ttft=5000", slots=2, n=4, timeout=0.3)))
    assert sorted(r.index for r in records) == list(range(4))
    assert all(not r.ok and r.error == "timeout" for r in records)
    assert time.monotonic() - t0 < 4.0  # two rounds of 0.3 s, not the server's 5 s


@pytest.mark.parametrize("http", ["lean", "aiohttp"])
def test_records_and_counts_are_the_same_through_run_point(sse_server, http):
    r = run_point(LoadConfig(url=sse_server.url, model="ok;ttft=3;itl=1", isl=16, osl=5, concurrency=4,
                             num_prompts=20, warmup_multiplier=1.0, processes=1, http=http))
    assert (r["completed"], r["failed"], r["total_output_tokens"]) == (20, 0, 100)
    assert r["median_ttft_ms"] >= 3 and r["p99_client_lag_ms"] >= 0


def test_gaps_waiting_for_the_fold_task_stay_bounded():
    # against a server that answers at once the fold task's timer can wait long (the loop's I/O
    # turn goes on, fed by callback-sent requests): at FOLD_MAX_PENDING waiting, book() folds them
    from srt_agent.loadgen.records import RequestRecord
    from srt_agent.loadgen.worker import FOLD_MAX_PENDING

    w = Worker(spec(1, "m", slots=1, n=1))
    n = FOLD_MAX_PENDING + 50
    for i in range(n):
        rec = RequestRecord(i, scheduled=0.0, ok=True)
        rec.chunk_times = [0.0, 0.001, 0.003]
        w.book(rec)
        assert rec.chunk_times is None
    assert len(w.unfolded) == 50 and w.itl.n == 2 * FOLD_MAX_PENDING
    w.fold()
    assert w.itl.n == 2 * n and len(w.records) == n
