"""Streaming /v1/completions over HTTP/1.1 keep-alive: two transports (the event parsing is in
sse_parse.py).

`LeanSlot` (the default) is one persistent connection driven by an asyncio.Protocol with the
`httptools` (llhttp) response parser: every data_received() takes one clock reading, and every
event completed by those bytes carries it, so a token's timestamp is when its bytes arrived.
`AiohttpSlot` does the same through aiohttp (one ClientSession per process, connection limit 0);
it is kept for comparison and as a fallback (--http aiohttp). docs/benchmarking.md has the
measurements that chose the default.
"""

from __future__ import annotations

import asyncio
import time

from .records import RequestRecord
from .sse_parse import EventStream

monotonic = time.monotonic


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time. A response's end resolves the waiter,
    or, while its slot runs a chain, goes first to the slot's ended() (a clean end on a connection
    kept alive), from this very callback."""

    def __init__(self) -> None:
        self.transport = None
        self.parser = None
        self.events: EventStream | None = None
        self.waiter: asyncio.Future | None = None
        self.slot: LeanSlot | None = None
        self.status = 0
        self.err_body = b""
        self.got_bytes = False
        self.keep_alive = True
        self.now = 0.0
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def start(self, events: EventStream, waiter: asyncio.Future, parser, slot: LeanSlot | None) -> None:
        self.parser = parser
        self.slot = slot
        self.body.clear()
        self.events = events
        self.waiter = waiter
        self.status = 0
        self.err_body = b""
        self.got_bytes = False
        self.keep_alive = True

    def data_received(self, data: bytes) -> None:
        self.now = monotonic()
        self.got_bytes = True
        if self.parser is None:
            return
        events = self.events
        try:
            self.parser.feed_data(data)
        except Exception as e:  # httptools.HttpParserError and friends
            self._finish(f"bad HTTP response: {e}")
            self.transport.close()
            return
        body = self.body
        if body:
            # every event completed by these bytes gets this read's timestamp
            events.feed(body[0] if len(body) == 1 else b"".join(body), self.now)
            body.clear()

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if self.status == 200:
            # an HTTP chunk that is one token event is taken at once (no join, no pass over the
            # read); the rest is buffered, in order, for EventStream.feed after this read
            if self.body or not self.events.one(body, self.now):
                self.body.append(body)
        elif len(self.err_body) < 1024:
            self.err_body += body

    def on_message_complete(self) -> None:
        if self.body:
            self.events.feed(b"".join(self.body), self.now)
            self.body.clear()
        self.keep_alive = self.parser.should_keep_alive()
        self.parser = None
        if self.status == 200:
            self._finish(None)
        else:
            self._finish(f"HTTP {self.status}: {self.err_body[:200].decode(errors='replace').strip()}")

    def connection_lost(self, exc) -> None:
        self.transport = None
        if self.parser is not None:
            what = f"{exc}" if exc else "closed by server"
            self._finish(f"connection {what} before the response ended")

    def _finish(self, error: str | None) -> None:
        w = self.waiter
        slot = self.slot
        if error is None and slot is not None and self.keep_alive:
            try:
                if slot.ended(self):
                    return
            except Exception as e:  # never leave the slot's task waiting for nothing
                if w is not None and not w.done():
                    w.set_exception(e)
                return
        if w is not None and not w.done():
            w.set_result(error)


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result("timeout")


class LeanSlot:
    """A concurrency slot that owns one keep-alive connection (reopened when the server closes it).

    request(payload, rec, chain) writes one request and waits for its response. With a chain (the
    closed loop) the slot's next request does not wait for that task to be woken: when a response
    ends cleanly on a connection kept alive, the protocol callback that read its last bytes
    finishes the record, takes the next (record, payload) from chain.next_after(end), writes it
    at once, and only then hands the ended record to chain.book(). The task wakes only when the
    chain runs out or breaks (an error, a connection the server closes, a timeout)."""

    def __init__(self, host: str, port: int, path: str, timeout: float | None) -> None:
        import httptools  # required for the lean path; checked by make_slots

        self._parser_cls = httptools.HttpResponseParser
        self.host, self.port, self.timeout = host, port, timeout
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Accept: text/event-stream\r\nConnection: keep-alive\r\nContent-Length: ").encode()
        self.conn: _Conn | None = None
        self.chain = None
        self.rec: RequestRecord | None = None  # the request written whose response has not ended
        self.events: EventStream | None = None
        self.waiter: asyncio.Future | None = None
        self.timer = None
        self.payload = b""
        self.retry = False  # resend once if the connection turns out stale (closed, no byte back)
        self.primed: tuple | None = None

    def encode(self, body: bytes) -> bytes:
        """The request as written on the wire (every slot of a process shares the head)."""
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.conn = await loop.create_connection(_Conn, self.host, self.port)

    def _open(self) -> _Conn | None:
        conn = self.conn
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return None
        return conn

    def _arm(self, conn: _Conn, payload: bytes, rec: RequestRecord, events, waiter, parser, retry: bool) -> None:
        """rec's request was just written on conn: get ready for its response."""
        self.rec, self.events, self.waiter, self.payload, self.retry = rec, events, waiter, payload, retry
        conn.start(events, waiter, parser, self if self.chain is not None else None)

    def _write(self, conn: _Conn, payload: bytes, rec: RequestRecord, retry: bool) -> None:
        conn.transport.write(payload)
        rec.sent = monotonic()
        waiter = self.waiter
        if waiter is None or waiter.done():
            waiter = asyncio.get_running_loop().create_future()
        self._arm(conn, payload, rec, EventStream(rec), waiter, self._parser_cls(conn), retry)
        self._set_timer()

    def _set_timer(self) -> None:
        if self.timeout:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = asyncio.get_running_loop().call_later(self.timeout, _expire, self.waiter)

    def prime(self, payload: bytes, rec: RequestRecord) -> bool:
        """Make everything of a request but its write, for fire(); False when not connected (then
        request() connects and sends it). A phase's first wave is primed before its start."""
        conn = self._open()
        if conn is None:
            return False
        self.primed = (payload, rec, EventStream(rec), asyncio.get_running_loop().create_future(),
                       self._parser_cls(conn))
        return True

    def fire(self) -> None:
        """Write the primed request now, synchronously: the first wave goes out in one tight loop of
        writes (no task switch, no allocation between two slots' sends). request() then waits."""
        primed, self.primed = self.primed, None
        conn = self._open()
        if primed is not None and conn is not None:
            payload, rec, events, waiter, parser = primed
            conn.transport.write(payload)
            rec.sent = monotonic()
            self._arm(conn, payload, rec, events, waiter, parser, True)

    def ended(self, conn: _Conn) -> bool:
        """Called by the protocol at a clean end on a kept-alive connection while a chain runs:
        finish the record, write the chain's next request, book the ended one. False: the chain
        has no next request (the waiter wakes the task, which returns None)."""
        rec, chain = self.rec, self.chain
        end = conn.now
        self.events.close(rec, end, None)
        nxt = chain.next_after(end)
        if nxt is None:
            self.rec = None
        else:
            self._write(conn, nxt[1], nxt[0], True)
        chain.book(rec)
        return nxt is not None

    async def request(self, payload: bytes, rec: RequestRecord, chain=None) -> RequestRecord | None:
        """Write rec's request (unless fire() did) and wait for its response. Returns the finished
        record not handed to chain.book() (without a chain: rec), or None when the chain ran out
        and booked every record."""
        self.chain = chain
        try:
            if self.rec is rec:  # fired
                self.conn.slot = self if chain is not None else None
                self._set_timer()
            elif not await self._send(payload, rec, True):
                return rec
            return await self._wait()
        finally:
            self.chain, self.events, self.payload = None, None, b""  # keep no ended request alive
            if self.conn is not None:
                self.conn.slot = self.conn.events = None
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    async def _send(self, payload: bytes, rec: RequestRecord, retry: bool) -> bool:
        conn = self._open()
        if conn is None:
            try:
                await self.connect()
            except OSError as e:
                rec.sent = monotonic()
                EventStream(rec).close(rec, monotonic(), f"connect failed: {e}")
                return False
            conn, retry = self.conn, False  # a new connection is not stale
        self._write(conn, payload, rec, retry)
        return True

    async def _wait(self) -> RequestRecord | None:
        while True:
            error = await self.waiter
            rec, conn = self.rec, self.conn
            if rec is None:
                return None
            if error is not None and self.retry and not conn.got_bytes and error != "timeout":
                # a stale keep-alive connection the server had closed: resend once
                if not await self._send(self.payload, rec, False):
                    self.rec = None
                    return rec
                continue
            end = conn.now if error is None else monotonic()
            if error is not None or not conn.keep_alive:
                if conn.transport is not None:
                    conn.transport.close()
                conn.parser = None
                self.conn = None
            self.rec = None
            self.events.close(rec, end, error)
            return rec

    def close(self) -> None:
        if self.conn is not None and self.conn.transport is not None:
            self.conn.transport.close()
        self.conn = None


class AiohttpSlot:
    """The same contract through aiohttp; the session (limit=0) is shared by the process's slots."""

    def __init__(self, session, url: str, timeout: float | None) -> None:
        self.session, self.url, self.timeout = session, url, timeout

    async def connect(self) -> None:
        return None

    def encode(self, body: bytes) -> bytes:
        return body

    def prime(self, payload: bytes, rec: RequestRecord) -> bool:
        return False  # aiohttp sends only from inside request()

    def fire(self) -> None:
        return None

    async def request(self, body: bytes, rec: RequestRecord, chain=None) -> RequestRecord:
        import aiohttp

        events = EventStream(rec)
        error = None
        rec.sent = monotonic()
        try:
            async with self.session.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                         timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                if resp.status != 200:
                    text = (await resp.read())[:200].decode(errors="replace").strip()
                    error = f"HTTP {resp.status}: {text}"
                else:
                    async for data in resp.content.iter_any():
                        events.feed(data, monotonic())
        except asyncio.TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as e:
            error = f"{type(e).__name__}: {e}"
        events.close(rec, monotonic(), error)
        return rec

    def close(self) -> None:
        return None


def make_session():
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, read_bufsize=1 << 20, auto_decompress=False,
                                 timeout=aiohttp.ClientTimeout(total=None))
