"""A small real SSE server (aiohttp) on 127.0.0.1, run in a background thread.

The request's "model" picks the behaviour, with ';'-separated options:
    "ok;ttft=20;itl=5"  one token per event, usage chunk, [DONE]
    "fail500"           HTTP 500
    "cut"               two token events, then the connection is closed mid-stream
    "empty"             events with empty text and usage completion_tokens 0
    "nousage"           like ok but without the usage chunk
    "close"             like ok, then the server closes the connection (Connection: close)
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
from aiohttp import web

PORT_RANGE = range(31100, 31200)


class SseServer:
    def __init__(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.arrivals: list[float] = []
        self.bodies: list[dict] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._runner = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.arrivals.append(time.monotonic())
        self.bodies.append(body)
        self.requests += 1
        kind, *opts = body["model"].split(";")
        opt = dict(o.split("=") for o in opts)
        ttft, itl = float(opt.get("ttft", 1)) / 1000, float(opt.get("itl", 1)) / 1000
        if kind == "fail500":
            return web.json_response({"error": {"message": "boom"}}, status=500)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            if kind == "close":
                resp.force_close()
            await resp.prepare(request)
            n = int(body["max_tokens"])
            await asyncio.sleep(ttft)
            for i in range(n):
                if kind == "cut" and i == 2:
                    request.transport.close()
                    return resp
                text = "" if kind == "empty" else f" t{i}"
                chunk = {"object": "text_completion", "choices": [{"index": 0, "text": text}], "usage": None}
                await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                if i < n - 1:
                    await asyncio.sleep(itl)
            if kind != "nousage":
                out = 0 if kind == "empty" else n
                usage = {"choices": [], "usage": {"prompt_tokens": len(body["prompt"]), "completion_tokens": out}}
                await resp.write(b"data: " + json.dumps(usage).encode() + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
            return resp
        finally:
            self.in_flight -= 1

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/completions", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()
        errors = []

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._runner.setup())
            for port in PORT_RANGE:
                try:
                    site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=1024)
                    self.loop.run_until_complete(site.start())
                    self.port = port
                    break
                except OSError as e:
                    errors.append(e)
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        if not self.port:
            raise RuntimeError(f"no free port in {PORT_RANGE}: {errors[-1:]}")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def sse_server():
    server = SseServer()
    server.start()
    yield server
    server.stop()
