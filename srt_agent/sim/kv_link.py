"""Simulated KV hand-off between a prefill worker and a decode worker (PD disaggregation).

In SGLang the prefill worker runs a bootstrap server on --disaggregation-bootstrap-port; the
router gives both workers the same `bootstrap_room`, and the decode worker starts decoding a
request once the prefill worker has computed and sent that room's KV cache. The simulator keeps
that coupling so time to first token includes the prefill's queueing and compute:

- the prefill worker serves a websocket at ws://HOST:BOOTSTRAP_PORT/sim/kv (`RoomBoard`);
- the decode worker (`KvLinkClient`) keeps one websocket per prefill worker, sends
  "w ROOM [ROOM...]" for rooms it waits for, and gets "d ROOM [ROOM...]" when their prefill
  finished; it then waits --sim-kv-transfer-ms and joins the decode batch.

The bootstrap host is the one the router sends (the prefill worker's address); a request without
bootstrap fields waits --sim-kv-transfer-ms only.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
from aiohttp import web

from srt_agent.sim.config import is_loopback_host  # noqa: F401  (re-exported)

log = logging.getLogger("srt_agent.sim")

PATH = "/sim/kv"
DONE_ROOM_TTL_S = 120.0  # rooms whose decode never asked are forgotten after this
SWEEP_EVERY_S = 30.0


class RoomBoard:
    """Prefill side: which rooms finished prefill, and which decode connection waits for which."""

    def __init__(self) -> None:
        self.done: dict[str, float] = {}
        self.waiters: dict[str, web.WebSocketResponse] = {}
        self._sweep_at = time.monotonic() + SWEEP_EVERY_S

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            parts = msg.data.split() if msg.type == aiohttp.WSMsgType.TEXT else []
            if not parts or parts[0] != "w":
                continue
            rooms = parts[1:]
            ready = []
            for room in rooms:
                if self.done.pop(room, None) is not None:
                    ready.append(room)
                else:
                    self.waiters[room] = ws
            if ready:
                await ws.send_str("d " + " ".join(ready))
        for room in [r for r, w in self.waiters.items() if w is ws]:
            del self.waiters[room]
        return ws

    def complete(self, rooms: list[str]) -> None:
        """Called by the scheduler (synchronously) when these rooms finished prefill."""
        now = time.monotonic()
        by_ws: dict[web.WebSocketResponse, list[str]] = {}
        for room in rooms:
            ws = self.waiters.pop(room, None)
            if ws is None:
                self.done[room] = now
            else:
                by_ws.setdefault(ws, []).append(room)
        for ws, ready in by_ws.items():
            if not ws.closed:
                asyncio.get_running_loop().create_task(_send(ws, "d " + " ".join(ready)))
        if now > self._sweep_at:
            self._sweep_at = now + SWEEP_EVERY_S
            self.done = {r: t for r, t in self.done.items() if now - t < DONE_ROOM_TTL_S}


async def _send(ws: web.WebSocketResponse, text: str) -> None:
    try:
        await ws.send_str(text)
    except (ConnectionError, RuntimeError):
        pass


class _Link:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: dict[str, asyncio.Future] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                parts = msg.data.split() if msg.type == aiohttp.WSMsgType.TEXT else []
                if parts and parts[0] == "d":
                    for room in parts[1:]:
                        fut = self.pending.pop(room, None)
                        if fut is not None and not fut.done():
                            fut.set_result(None)
        finally:
            err = ConnectionError("KV bootstrap connection to the prefill worker closed")
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(err)
            self.pending.clear()


class KvLinkClient:
    """Decode side: waits until a room's prefill is done on the prefill worker."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._links: dict[tuple[str, int], _Link] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}

    async def close(self) -> None:
        for link in self._links.values():
            await link.ws.close()
        if self._session is not None:
            await self._session.close()

    async def _link(self, host: str, port: int) -> _Link:
        key = (host, port)
        link = self._links.get(key)
        if link is not None and not link.ws.closed:
            return link
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            link = self._links.get(key)
            if link is not None and not link.ws.closed:
                return link
            if self._session is None:
                self._session = aiohttp.ClientSession(trust_env=False)
            url = f"http://{'[' + host + ']' if ':' in host else host}:{port}{PATH}"
            ws = await self._session.ws_connect(url, heartbeat=30.0)
            link = self._links[key] = _Link(ws)
            return link

    async def wait(self, host: str, port: int, room: str) -> None:
        """Return once the prefill worker at host:port finished `room` (timeout 0 = none)."""
        await asyncio.wait_for(self._wait(host, port, room), self.timeout_s or None)

    async def _wait(self, host: str, port: int, room: str) -> None:
        link = await self._link(host, port)
        fut = asyncio.get_running_loop().create_future()
        link.pending[room] = fut
        try:
            await link.ws.send_str("w " + room)
            await fut
        finally:
            link.pending.pop(room, None)
