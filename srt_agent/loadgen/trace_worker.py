"""One worker process of a trace replay: its share of the trace's requests, each sent at its
timestamp (open loop), at most `slots` of them in flight when the replay has a concurrency cap.

Same pipe protocol as worker.py (connected / warmup / warmed / measure / done); the spec is a
TraceWorkerSpec, whose `serve` worker_entry calls instead of worker.worker_main.

A request whose time has come while every slot is busy waits for the first free one (first come,
first served); its latencies count from its timestamp (`scheduled`), and `ready` is when a slot
freed up, so schedule delay = sent - timestamp and client lag = sent - ready, as in Poisson mode.
Without a cap a request never waits: a new connection is opened when every open one is busy.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from dataclasses import dataclass, field

from . import worker as base
from .metrics import percentile
from .records import RequestRecord
from .sse import AiohttpSlot, LeanSlot

monotonic = time.monotonic


@dataclass
class TraceWorkerSpec(base.WorkerSpec):
    due: dict[int, float | None] = field(default_factory=dict)  # request -> seconds after the start (None:
    # untimed, sent when a slot is free, its latencies counted from then as in a closed loop)
    capped: bool = True  # False: slots is only how many connections are opened up front

    def serve(self, conn) -> None:
        """Entry point of the worker process (srt_agent.loadgen.worker_entry)."""
        base.worker_main(conn, self, _serve)


class TraceWorker(base.Worker):
    """Uses of worker.Worker only its connections (open/close), request bodies (self.body) and
    ITL folding (fold/fold_loop); the schedule, records and sends are its own."""

    def _new_slot(self):
        s = self.spec
        if s.http == "aiohttp":
            return AiohttpSlot(self.session, f"http://{s.host}:{s.port}{s.path}", s.timeout)
        return LeanSlot(s.host, s.port, s.path, s.timeout)  # connects on its first request

    def _trace_record(self, g: int, scheduled: float, ready: float) -> RequestRecord:
        rec = RequestRecord(g, scheduled=scheduled, ready=ready)
        rec.requested_output_tokens = self.spec.workload.output_lens[g]
        rec.input_tokens = self.spec.workload.input_lens[g]
        return rec

    async def _send(self, slot, rec: RequestRecord) -> None:
        await slot.request(slot.encode(self.body(rec.index)), rec)
        if rec.chunk_times is not None:
            if rec.ok:  # folded by fold_loop, off the send path
                self.unfolded.append(rec.chunk_times)
            rec.chunk_times = None

    async def replay(self, indices: list[int], start: float, capped: bool) -> list[RequestRecord]:
        """Each request at start + its offset (warmup requests: at start), at most len(slots) in
        flight when capped."""
        s = self.spec
        free: deque = deque((slot, start) for slot in self.slots)  # (slot, when it became free)
        freed = asyncio.Event()
        records: list[RequestRecord] = []
        tasks: set[asyncio.Task] = set()

        async def run(slot, rec):
            await self._send(slot, rec)
            records.append(rec)
            free.append((slot, rec.end or monotonic()))
            freed.set()

        for g in sorted(indices, key=lambda g: s.due.get(g) or 0.0):
            offset = s.due.get(g, 0.0)
            due = start + (offset or 0.0)
            wait = due - monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            while monotonic() < due:  # a loop timer may fire up to a millisecond early: never send early
                pass
            while not free and capped:
                freed.clear()
                await freed.wait()
            if free:
                slot, since = free.popleft()
            else:  # uncapped and every connection busy: one more (closed with the others)
                slot, since = self._new_slot(), due
                self.slots.append(slot)
            ready = max(due, since)
            task = asyncio.ensure_future(run(slot, self._trace_record(g, ready if offset is None else due, ready)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
        return records

    async def measure(self, start: float) -> base.WorkerResult:
        s = self.spec
        self.itl = base.ItlHistogram()
        self.unfolded = []
        delay = start - monotonic() - base.START_SPIN_S
        if delay > 0:
            await asyncio.sleep(delay)
        while monotonic() < start:
            pass
        lags: list[float] = []
        stop = asyncio.Event()

        async def watch_loop():
            while not stop.is_set():
                due = monotonic() + base.LAG_TICK_S
                await asyncio.sleep(base.LAG_TICK_S)
                lags.append((monotonic() - due) * 1000.0)

        watcher = asyncio.ensure_future(watch_loop())
        folder = asyncio.ensure_future(self.fold_loop())
        cpu0, wall0 = time.process_time(), monotonic()
        records = await self.replay(s.measured, start, s.capped)
        cpu = (time.process_time() - cpu0) / max(monotonic() - wall0, 1e-9)
        stop.set()
        watcher.cancel()
        folder.cancel()
        self.fold()
        return base.WorkerResult(records, self.itl, cpu, percentile(sorted(lags), 99.0))


async def _serve(conn, spec: TraceWorkerSpec) -> None:
    loop = asyncio.get_running_loop()
    worker = TraceWorker(spec)
    await worker.open()
    conn.send(("connected",))
    try:
        msg = conn.recv()
        assert msg[0] == "warmup", msg
        base._quiet_gc()
        loop.add_reader(conn.fileno(), base._watch_parent, conn)
        warm = await worker.replay(spec.warmup, monotonic(), capped=True)  # all at once, slots bound it
        base._unwatch(loop, conn)
        conn.send(("warmed", sum(1 for r in warm if not r.ok)))
        msg = conn.recv()
        assert msg[0] == "measure", msg
        base._quiet_gc()
        loop.add_reader(conn.fileno(), base._watch_parent, conn)
        result = await worker.measure(msg[1])
        base._unwatch(loop, conn)
        gc.enable()
        result.peak_rss_mb = base.peak_rss_mb()
        conn.send(("done", result))
    finally:
        await worker.close()
