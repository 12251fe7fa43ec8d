"""One load-generator worker process: its own event loop, its own slots, nothing shared.

The parent (runner.py) drives every worker through a Pipe:
    worker -> ("connected",)          prompts built, slots connected
    parent -> ("warmup",)             closed loop over the warmup requests (not measured)
    worker -> ("warmed", failed)
    parent -> ("measure", T0)         start of the measured phase (monotonic clock)
    worker -> ("done", WorkerResult)
    worker -> ("error", traceback)    anything unexpected
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import os
import random
import resource
import time
import traceback
from dataclasses import dataclass, field

from .metrics import percentile
from .prompts import Workload
from .records import ItlHistogram, RequestRecord
from .sse import AiohttpSlot, LeanSlot, make_session

monotonic = time.monotonic
CONNECT_PARALLELISM = 128
LAG_TICK_S = 0.01
START_SPIN_S = 0.002  # the measured phase starts on the clock, not on a (millisecond) loop timer
FOLD_EVERY_S = 0.05  # ITL gaps of ended requests are folded into the histogram this often, off the send path
FOLD_MAX_PENDING = 256  # ... or at once, past this many requests waiting for it (memory stays bounded)


@dataclass
class WorkerSpec:
    worker_id: int
    host: str
    port: int
    path: str
    model: str
    slots: int
    warmup: list[int]
    measured: list[int]
    workload: Workload
    request_rate: float = math.inf
    seed: int = 0
    timeout: float | None = None
    http: str = "lean"
    use_uvloop: bool = True
    extra_body: dict = field(default_factory=dict)


@dataclass
class WorkerResult:
    records: list[RequestRecord]
    itl: ItlHistogram
    cpu_fraction: float
    loop_lag_p99_ms: float
    warmup_failed: int = 0
    peak_rss_mb: float = 0.0


class BodyMaker:
    """Request body bytes of global request g; everything but the prompt is encoded once."""

    def __init__(self, model: str, workload: Workload, extra: dict) -> None:
        self.workload = workload
        self.head = b'{"model":' + json.dumps(model).encode() + b',"prompt":'
        self.mid = b',"max_tokens":'
        extra_json = b"".join(b"," + json.dumps(k).encode() + b":" + json.dumps(v).encode()
                              for k, v in extra.items())
        self.tail = (b',"stream":true,"stream_options":{"include_usage":true},"ignore_eos":true,'
                     b'"temperature":0.0' + extra_json + b"}")

    def __call__(self, g: int) -> bytes:
        return (self.head + self.workload.prompt_json(g) + self.mid
                + str(self.workload.output_lens[g]).encode() + self.tail)


class Feed:
    """A phase's request indices, taken in order, with the wire bytes of the next `ahead` ones
    built ahead: all before the phase starts, then one per request booked (after the slot's next
    request was written), so no send builds bytes and no loop turn builds many."""

    def __init__(self, indices: list[int], make, ahead: int) -> None:
        self.indices, self.make, self.ahead = indices, make, ahead
        self.pos = self.built_to = 0
        self.built: dict[int, bytes] = {}

    def take(self) -> int | None:
        if self.pos >= len(self.indices):
            return None
        self.pos += 1
        return self.indices[self.pos - 1]

    def payload(self, g: int) -> bytes:
        p = self.built.pop(g, None)
        return p if p is not None else self.make(g)

    def fill(self, most: int | None = None) -> None:
        self.built_to = max(self.built_to, self.pos)
        end = min(len(self.indices), self.pos + self.ahead)
        if most is not None:
            end = min(end, self.built_to + most)
        for g in self.indices[self.built_to: end]:
            self.built[g] = self.make(g)
        self.built_to = max(self.built_to, end)


class Worker:
    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self.body = BodyMaker(spec.model, spec.workload, spec.extra_body)
        self.itl = ItlHistogram()
        self.session = None
        self.slots: list = []
        self.unfolded: list[list[float]] = []  # chunk times of ended ok requests, not yet in self.itl
        self.records: list[RequestRecord] = []
        self.feed = Feed([], self._make, 0)

    def _make(self, g: int) -> bytes:
        return self.slots[0].encode(self.body(g))  # the slots of a process share their request head

    async def open(self) -> None:
        s = self.spec
        if s.http == "aiohttp":
            self.session = make_session()
            url = f"http://{s.host}:{s.port}{s.path}"
            self.slots = [AiohttpSlot(self.session, url, s.timeout) for _ in range(s.slots)]
            return
        self.slots = [LeanSlot(s.host, s.port, s.path, s.timeout) for _ in range(s.slots)]
        gate = asyncio.Semaphore(CONNECT_PARALLELISM)

        async def connect(slot):
            async with gate:
                try:
                    await slot.connect()
                except OSError:
                    pass  # the slot reconnects on its first request and records the failure there

        await asyncio.gather(*(connect(slot) for slot in self.slots))

    async def close(self) -> None:
        for slot in self.slots:
            slot.close()
        if self.session is not None:
            await self.session.close()

    def _record(self, g: int, scheduled: float, ready: float) -> RequestRecord:
        rec = RequestRecord(g, scheduled=scheduled, ready=ready)
        rec.requested_output_tokens = self.spec.workload.output_lens[g]
        rec.input_tokens = self.spec.workload.input_lens[g]
        return rec

    # the closed loop's chain (LeanSlot.request): called from the protocol callback that read the
    # end of a slot's response, so the slot's next request is written before that callback returns
    def next_after(self, end: float) -> tuple[RequestRecord, bytes] | None:
        g = self.feed.take()
        if g is None:
            return None
        return self._record(g, end, end), self.feed.payload(g)

    def book(self, rec: RequestRecord) -> None:
        self.records.append(rec)
        if rec.chunk_times is not None:
            if rec.ok:  # folded later by fold_loop, off the send path
                self.unfolded.append(rec.chunk_times)
                if len(self.unfolded) >= FOLD_MAX_PENDING:  # fold_loop is late: its timer waits
                    self.fold()  # while the loop's I/O turn goes on (the chain, a zero-latency server)
            rec.chunk_times = None
        self.feed.fill(1)

    def fold(self) -> None:
        pending, self.unfolded = self.unfolded, []
        for times in pending:
            self.itl.add_times(times)

    async def fold_loop(self) -> None:
        while True:
            await asyncio.sleep(FOLD_EVERY_S)
            self.fold()

    def prime(self, indices: list[int], start: float) -> list[tuple]:
        """A closed loop's first wave (every slot at `start`): records, bytes, parsers, all but the
        writes, which fire() makes in one synchronous loop at the start."""
        self.records = []
        self.feed = Feed(indices, self._make, len(self.slots))
        self.feed.fill()
        first = []
        for slot in self.slots:
            g = self.feed.take()
            if g is None:
                break
            rec = self._record(g, start, start)
            payload = self.feed.payload(g)
            slot.prime(payload, rec)  # False (not connected, aiohttp): request() sends it
            first.append((slot, rec, payload))
        self.feed.fill()  # the next wave's bytes too
        return first

    async def closed_loop(self, first: list[tuple]) -> list[RequestRecord]:
        """Every slot sends its next request as soon as its previous one ended, from the callback
        that saw the end (LeanSlot); the first wave, primed, is written in one synchronous loop."""
        for slot, _, _ in first:
            slot.fire()

        async def run_slot(slot, rec, payload):
            while True:
                last = await slot.request(payload, rec, self)
                if last is None:  # the chain booked every record
                    return
                self.book(last)
                nxt = self.next_after(last.end)
                if nxt is None:
                    return
                rec, payload = nxt

        await asyncio.gather(*(run_slot(*f) for f in first))
        return self.records

    async def poisson(self, indices: list[int], start: float, rate: float) -> list[RequestRecord]:
        """Poisson arrivals at `rate`, at most len(slots) in flight; a request that arrives while
        every slot is busy waits, and that wait is part of its latency."""
        rng = random.Random(self.spec.seed * 1_000_003 + self.spec.worker_id)
        t = start
        due_of = {}
        for g in indices:
            t += rng.expovariate(rate)
            due_of[g] = t
        self.records = []

        async def run_slot(slot):
            free = start
            while (g := self.feed.take()) is not None:
                due = due_of[g]
                wait = due - monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                rec = await slot.request(self.feed.payload(g), self._record(g, due, max(due, free)))
                self.book(rec)
                free = rec.end

        await asyncio.gather(*(run_slot(slot) for slot in self.slots))
        return self.records

    async def measure(self, start: float) -> WorkerResult:
        s = self.spec
        self.itl = ItlHistogram()
        self.unfolded = []  # the warmup's gaps are not measured
        closed = math.isinf(s.request_rate)
        if closed:  # the first wave costs the client nothing but its writes at the start
            first = self.prime(s.measured, start)
        else:
            self.feed = Feed(s.measured, self._make, len(self.slots))
            self.feed.fill()
        lags: list[float] = []
        stop = asyncio.Event()

        async def watch_loop():
            await asyncio.sleep(max(start - monotonic(), 0.0))
            while not stop.is_set():
                due = monotonic() + LAG_TICK_S
                await asyncio.sleep(LAG_TICK_S)
                lags.append((monotonic() - due) * 1000.0)

        # everything but the writes is done before the start: the first write follows the spin
        watcher = asyncio.ensure_future(watch_loop())
        folder = asyncio.ensure_future(self.fold_loop())
        delay = start - monotonic() - START_SPIN_S
        if delay > 0:
            await asyncio.sleep(delay)
        cpu0, wall0 = time.process_time(), monotonic()
        while monotonic() < start:  # the loop's timers fire up to a millisecond late: spin the rest
            pass
        if closed:
            records = await self.closed_loop(first)
        else:
            records = await self.poisson(s.measured, start, s.request_rate)
        cpu = (time.process_time() - cpu0) / max(monotonic() - wall0, 1e-9)
        stop.set()
        watcher.cancel()
        folder.cancel()
        self.fold()
        return WorkerResult(records, self.itl, cpu, percentile(sorted(lags), 99.0))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would count the forking parent's)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


def new_event_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            pass
    return asyncio.new_event_loop()


def _watch_parent(conn) -> None:
    """While a phase runs the parent sends nothing: readable means it is gone. Stop at once
    rather than keep loading the server for nobody."""
    try:
        conn.recv()
    except (EOFError, OSError):
        pass
    os._exit(3)


def _unwatch(loop, conn) -> None:
    loop.remove_reader(conn.fileno())
    os.set_blocking(conn.fileno(), True)  # add_reader made it non-blocking


def _quiet_gc() -> None:
    """No cyclic-GC pauses inside a phase: everything built so far is frozen out of the collector
    and automatic collection is off until the phase ends (a full collection over tens of thousands
    of records took tens of ms, late sends and late timestamps). The hot path makes no cycles."""
    gc.collect()
    gc.freeze()
    gc.disable()


async def _serve(conn, spec: WorkerSpec) -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(spec)
    await worker.open()
    conn.send(("connected",))
    try:
        msg = conn.recv()
        assert msg[0] == "warmup", msg
        _quiet_gc()
        loop.add_reader(conn.fileno(), _watch_parent, conn)
        warm = await worker.closed_loop(worker.prime(spec.warmup, monotonic())) if spec.warmup else []
        _unwatch(loop, conn)
        conn.send(("warmed", sum(1 for r in warm if not r.ok)))
        msg = conn.recv()
        assert msg[0] == "measure", msg
        _quiet_gc()
        loop.add_reader(conn.fileno(), _watch_parent, conn)
        result = await worker.measure(msg[1])
        _unwatch(loop, conn)
        gc.enable()
        result.warmup_failed = sum(1 for r in warm if not r.ok)
        result.peak_rss_mb = peak_rss_mb()
        conn.send(("done", result))
    finally:
        await worker.close()


def worker_main(conn, spec: WorkerSpec, serve=None) -> None:
    """Entry point of a worker process: `serve(conn, spec)` (this module's closed-loop / rate worker
    unless given, e.g. trace_worker's replay) on a fresh event loop; an error goes to the parent."""
    try:
        _raise_fd_limit()
        loop = new_event_loop(spec.use_uvloop)
        try:
            loop.run_until_complete((serve or _serve)(conn, spec))
        finally:
            loop.close()
    except BaseException:
        try:
            conn.send(("error", traceback.format_exc()))
        except Exception:
            pass
    finally:
        conn.close()

