"""Streaming /v1/completions over HTTP/1.1 keep-alive: event parsing and two transports.

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

try:  # orjson parses a chunk ~3x faster; optional
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    from json import loads as _loads

monotonic = time.monotonic


class EventStream:
    """Parses the SSE body of one response into the request's record."""

    __slots__ = ("buf", "crlf", "done", "error", "rec", "saw_event", "times")

    def __init__(self, rec: RequestRecord) -> None:
        self.rec = rec
        self.buf = b""
        self.done = False
        self.error: str | None = None
        self.times: list[float] = []
        self.saw_event = False
        self.crlf: bool | None = None

    def feed(self, data: bytes, t: float) -> None:
        """Take body bytes that arrived at time t (seconds, monotonic)."""
        if self.one(data, t):
            return
        buf = self.buf + data if self.buf else data
        if self.crlf is None:
            if b"\n" not in buf:
                self.buf = buf
                return
            nl = buf.find(b"\n")  # the first line break tells the style (no scan of the whole read)
            self.crlf = nl > 0 and buf[nl - 1] == 13
        if self.crlf:
            buf = buf.replace(b"\r\n", b"\n")
            if buf.endswith(b"\r"):  # half of a line break: keep it for the next read
                self.buf = buf
                return
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            self.buf = buf
            return
        whole, self.buf = buf[: cut + 2], buf[cut + 2 :]
        # Fast path, the complete events of this read at once: when every event is a compact token
        # event (exactly one '"text":"' or '"content":"' each, no usage object), count the
        # non-empty ones. The byte pattern cannot occur inside a JSON string value, whose quotes
        # are escaped. When not, the events before the first special one (usage object, error,
        # [DONE]: a stream's tail) may still be; the rest is parsed event by event. Every pass
        # over the bytes costs ~0.2 us per token at 64 KiB reads, so the common case takes four.
        if self._count_tokens(whole, t):
            return
        special = min((i for i in (whole.find(b'"usage":{'), whole.find(b'"error"'), whole.find(b"[DONE]"))
                       if i >= 0), default=-1)
        if special > 0:
            split = whole.rfind(b"\n\n", 0, special)
            if split >= 0 and self._count_tokens(whole[: split + 2], t):
                whole = whole[split + 2 :]
        for ev in whole.split(b"\n\n"):
            for line in ev.split(b"\n"):
                if line.startswith(b"data:"):
                    self._data(line[5:].strip(), t)

    def one(self, data: bytes, t: float) -> bool:
        """One whole single-line compact token event (the usual read while streaming, and the
        usual HTTP chunk): take it and say True; anything else: False, nothing taken."""
        if self.crlf is None and not self.buf:  # the stream's first bytes: its line-break style
            nl = data.find(b"\n")
            if nl < 0:
                return False
            self.crlf = nl > 0 and data[nl - 1] == 13
        if not self.buf and self.crlf is False and data.endswith(b"\n\n") and data.count(b"\n") == 2:
            i = data.find(b'"text":"')
            if i > 0 and data.startswith(b"data:") and b'"usage":{' not in data:
                self.saw_event = True
                if data[i + 8] != 34:  # not an empty string
                    self.times.append(t)
                return True
        return False

    def _count_tokens(self, whole: bytes, t: float) -> bool:
        """Whole compact token events only: add their token timestamps and say True, else False.
        An event without the text key (an error, [DONE], a comment) makes the counts differ."""
        n_events = whole.count(b"\n\n")
        n = whole.count(b'"text":"')
        if n == n_events:
            if b'"usage":{' in whole:
                return False
            tokens = n - whole.count(b'"text":""')
        elif not n and whole.count(b'"content":"') == n_events:
            if b'"usage":{' in whole:
                return False
            tokens = n_events - whole.count(b'"content":""')
        else:
            return False
        if b'"error"' in whole and (b'"error":{' in whole or b'"object":"error"' in whole):
            return False
        self.saw_event = True
        if tokens:
            self.times.extend([t] * tokens)
        return True

    def _data(self, payload: bytes, t: float) -> None:
        self.saw_event = True
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            obj = _loads(payload)
        except ValueError:
            self.error = f"unparseable SSE data: {payload[:100]!r}"
            return
        if not isinstance(obj, dict):
            return
        if "error" in obj or obj.get("object") == "error":
            err = obj.get("error", obj)
            self.error = "stream error: " + str(err.get("message", err) if isinstance(err, dict) else err)[:200]
            return
        choices = obj.get("choices")
        if choices:
            for c in choices:
                if c.get("text") or (c.get("delta") or {}).get("content"):
                    self.times.append(t)
                    break
        usage = obj.get("usage")
        if usage:
            rec = self.rec
            if "completion_tokens" in usage:
                rec.output_tokens = int(usage["completion_tokens"])
                rec.usage_reported = True
            if usage.get("prompt_tokens"):
                rec.input_tokens = int(usage["prompt_tokens"])

    def close(self, rec: RequestRecord, end: float, error: str | None) -> None:
        """Finish the record: ok only with HTTP 200, a clean end of body and no stream error."""
        rec.end = end
        error = error or self.error
        if self.times:
            rec.first_token = self.times[0]
            rec.n_chunks = len(self.times)
            rec.chunk_times = self.times
        if not rec.usage_reported:
            rec.output_tokens = len(self.times)
        rec.ok = error is None
        rec.error = error


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport = None
        self.parser = None
        self.events: EventStream | None = None
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.err_body = b""
        self.got_bytes = False
        self.keep_alive = True
        self.now = 0.0
        self.body: list[bytes] = []

    def connection_made(self, transport) -> None:
        self.transport = transport

    def start(self, events: EventStream, waiter: asyncio.Future, parser_cls) -> None:
        self.parser = parser_cls(self)
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
        if w is not None and not w.done():
            w.set_result(error)


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result("timeout")


class LeanSlot:
    """A concurrency slot that owns one keep-alive connection (reopened when the server closes it)."""

    def __init__(self, host: str, port: int, path: str, timeout: float | None) -> None:
        import httptools  # required for the lean path; checked by make_slots

        self._parser_cls = httptools.HttpResponseParser
        self.host, self.port, self.timeout = host, port, timeout
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Accept: text/event-stream\r\nConnection: keep-alive\r\nContent-Length: ").encode()
        self.conn: _Conn | None = None
        self._begun: tuple | None = None  # (conn, events, waiter) of a request begin() wrote

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.conn = await loop.create_connection(_Conn, self.host, self.port)

    def _payload(self, body: bytes) -> bytes:
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body

    def _send(self, conn: _Conn, payload: bytes, rec: RequestRecord) -> tuple:
        events = EventStream(rec)
        waiter = asyncio.get_running_loop().create_future()
        conn.start(events, waiter, self._parser_cls)
        conn.transport.write(payload)
        rec.sent = monotonic()
        return conn, events, waiter

    def begin(self, body: bytes, rec: RequestRecord) -> bool:
        """Write the request now, synchronously, when the connection is open, and say True; the
        next request() call then only waits for its response. A phase's first wave goes out this
        way in one tight loop (no task switch between two slots' sends). False: nothing sent."""
        conn = self.conn
        if conn is None or conn.transport is None or conn.transport.is_closing():
            return False
        self._begun = self._send(conn, self._payload(body), rec)
        return True

    async def request(self, body: bytes, rec: RequestRecord) -> None:
        loop = asyncio.get_running_loop()
        payload = None
        for attempt in (0, 1):
            if attempt == 0 and self._begun is not None:
                (conn, events, waiter), self._begun = self._begun, None
                reused = True
            else:
                conn = self.conn
                reused = conn is not None and conn.transport is not None and not conn.transport.is_closing()
                if not reused:
                    try:
                        await self.connect()
                    except OSError as e:
                        rec.sent = monotonic()
                        EventStream(rec).close(rec, monotonic(), f"connect failed: {e}")
                        return
                    conn = self.conn
                payload = payload or self._payload(body)
                conn, events, waiter = self._send(conn, payload, rec)
            timer = loop.call_later(self.timeout, _expire, waiter) if self.timeout else None
            error = await waiter
            if timer is not None:
                timer.cancel()
            if error is not None and reused and attempt == 0 and not conn.got_bytes and error != "timeout":
                continue  # a stale keep-alive connection the server had closed: resend once
            end = conn.now if error is None else monotonic()
            if error is not None or not conn.keep_alive:
                if conn.transport is not None:
                    conn.transport.close()
                conn.parser = None
                self.conn = None
            events.close(rec, end, error)
            return

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

    def begin(self, body: bytes, rec: RequestRecord) -> bool:
        return False  # aiohttp sends only from inside request()

    async def request(self, body: bytes, rec: RequestRecord) -> None:
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

    def close(self) -> None:
        return None


def make_session():
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=None)
    return aiohttp.ClientSession(connector=connector, read_bufsize=1 << 20, auto_decompress=False,
                                 timeout=aiohttp.ClientTimeout(total=None))
