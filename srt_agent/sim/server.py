"""HTTP server of the simulated SGLang worker (aiohttp), with SGLang's endpoints.

GET  /health                 503 until --sim-startup-s has passed, then 200 (empty body)
GET  /health_generate        runs a 1-token generation through the scheduler, 200 when done
GET  /server_info, /get_server_info    server arguments (model_path, tokenizer_path, tp_size, ...)
GET  /model_info, /get_model_info      model_path, tokenizer_path, is_generation, ...
GET  /v1/models              the served model
POST /v1/completions         OpenAI completions, streaming (SSE) or not
POST /v1/chat/completions    OpenAI chat completions, streaming (SSE) or not
POST /generate               SGLang native generate (text or input_ids, sampling_params, stream)
POST /flush_cache            200
POST /start_profile, /stop_profile     simulated torch profiler (see profiler.py)
GET  /metrics                Prometheus counters and gauges
GET  /version                {"version": ...}

A prefill worker (--disaggregation-mode prefill) also serves the KV bootstrap websocket on
--disaggregation-bootstrap-port (see kv_link.py).

Endpoints live in generation_api.py (completions, chat, generate) and status_api.py (the rest);
request plumbing in http_common.py. SimServer joins them with the lifecycle and the generation plumbing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid

import aiohttp
from aiohttp import web

from srt_agent.sim.config import SimConfig
from srt_agent.sim.engine import Generation, Scheduler
from srt_agent.sim.generation_api import GenerationEndpoints
from srt_agent.sim.http_common import SSE_HEADERS, RequestError, error_response, single
from srt_agent.sim.kv_link import KvLinkClient, RoomBoard
from srt_agent.sim.profiler import Profiler
from srt_agent.sim.status_api import HEALTH_GENERATE_TIMEOUT_S, VERSION, StatusEndpoints
from srt_agent.sim.streams import ChatStream, ChunkWriter
from srt_agent.sim.vocab import Vocab

__all__ = ["HEALTH_GENERATE_TIMEOUT_S", "READY_LINE", "VERSION", "RequestError", "SimServer"]

log = logging.getLogger("srt_agent.sim")

# Prompts longer than this (characters) are tokenized in a worker thread (tokenizers frees the GIL).
OFFLOAD_TOKENIZE_CHARS = 16384
READY_LINE = "The server is fired up and ready to roll!"


class SimServer(GenerationEndpoints, StatusEndpoints):
    def __init__(self, config: SimConfig, vocab: Vocab, *, tokenizer_path: str,
                 reported_model_path: str | None = None, node: str | None = None) -> None:
        self.config = config
        self.vocab = vocab
        self.tokenizer_path = tokenizer_path
        self.reported_model_path = reported_model_path or config.model_path
        self.node = node or os.environ.get("SLURMD_NODENAME") or socket.gethostname()
        self.role = config.role
        self.scheduler = Scheduler(config)
        self.profiler = Profiler(config, self.node)
        self.scheduler.profiler = self.profiler
        self.board = RoomBoard() if self.role == "prefill" else None
        self.kv = KvLinkClient(config.kv_timeout_s) if self.role == "decode" else None
        if self.board is not None:
            self.scheduler.on_prefill_done = self._prefill_done
        self.ready = False
        self.created = int(time.time())
        self.seed_prefix = f"{config.seed}\x00".encode()
        self.ncand = len(vocab.candidate_ids)
        self._warned_remote_bootstrap = False
        self._runners: list[web.AppRunner] = []
        self.answers = None  # srt_agent.sim.answers.Answers with --sim-answers-dataset

    # -- lifecycle ------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_get("/health", self.health)
        r.add_get("/health_generate", self.health_generate)
        for path in ("/server_info", "/get_server_info"):
            r.add_get(path, self.server_info)
        for path in ("/model_info", "/get_model_info"):
            r.add_get(path, self.model_info)
        r.add_get("/v1/models", self.models)
        r.add_post("/v1/completions", self.completions)
        r.add_post("/v1/chat/completions", self.chat_completions)
        r.add_post("/generate", self.generate)
        for method in ("GET", "POST"):
            r.add_route(method, "/flush_cache", self.flush_cache)
            r.add_route(method, "/start_profile", self.start_profile)
            r.add_route(method, "/stop_profile", self.stop_profile)
        r.add_get("/metrics", self.metrics)
        r.add_get("/version", self.version)
        return app

    async def start(self) -> None:
        cfg = self.config
        self.scheduler.start()
        await self._listen(self.app(), cfg.host, cfg.port)
        if self.board is not None:
            await self._listen(self.board.app(), cfg.host, cfg.disaggregation_bootstrap_port)
            log.info("KV bootstrap server listening on %s:%d", cfg.host, cfg.disaggregation_bootstrap_port)
        log.info("Simulated SGLang server (%s) on http://%s:%d", self.role, cfg.host, cfg.port)
        asyncio.get_running_loop().call_later(cfg.startup_s, self._set_ready)

    async def _listen(self, app: web.Application, host: str, port: int) -> None:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
        await site.start()

    def _set_ready(self) -> None:
        self.ready = True
        log.info(READY_LINE)

    async def close(self) -> None:
        self.ready = False
        await self.scheduler.stop()
        if self.kv is not None:
            await self.kv.close()
        for runner in reversed(self._runners):
            await runner.cleanup()

    # -- helpers --------------------------------------------------------------------------
    async def _json(self, request: web.Request) -> dict:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            raise RequestError(f"invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object")
        return body

    async def _count(self, text: str) -> int:
        if len(text) > OFFLOAD_TOKENIZE_CHARS and self.vocab.source == "tokenizer":
            return await asyncio.get_running_loop().run_in_executor(None, self.vocab.count_text, text)
        return self.vocab.count_text(text)

    async def _prompt(self, prompt: object, name: str) -> tuple[int, bytes]:
        """(token count, determinism key) of a text prompt or a list of token ids."""
        prompt = single(prompt, name)
        if isinstance(prompt, str):
            return await self._count(prompt), prompt.encode()
        if isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return len(prompt), b"ids:" + ",".join(map(str, prompt)).encode()
        raise RequestError(f"{name} must be a string or a list of token ids")

    def _answer(self, prompt: object, body: dict) -> str | None:
        """The eval answer for a non-streaming text prompt (--sim-answers-dataset), else None."""
        if self.answers is None or body.get("stream") or not isinstance(prompt, str):
            return None
        return self.answers.answer(prompt)

    def _generation(self, prompt_tokens: int, key: bytes, max_new: int, min_new: int, ignore_eos: bool,
                    *, rid: str | None = None, keep_tokens: bool, answer: str | None = None) -> Generation:
        if answer is not None:  # as many tokens as the answer has (within max_tokens), then stop
            max_new = min_new = min(max_new, max(1, self.vocab.count_text(answer)))
            ignore_eos = True
        limit = self.config.context_length - prompt_tokens
        if limit <= 0:
            raise RequestError(f"The input ({prompt_tokens} tokens) is longer than the model's context "
                               f"length ({self.config.context_length} tokens).")
        if max_new < 0 or min_new < 0:
            raise RequestError("max_tokens and min_tokens must be >= 0")
        max_new = min(max_new, limit)
        if self.role == "prefill":  # a prefill worker answers with the first token only
            max_new = min(max_new, 1)
        return Generation(rid or uuid.uuid4().hex, prompt_tokens, max_new, min_new_tokens=min_new,
                          ignore_eos=ignore_eos, eos_probability=self.config.eos_probability,
                          seed_material=self.seed_prefix + key, ncand=self.ncand, keep_tokens=keep_tokens)

    async def _before_queue(self, gen: Generation, body: dict) -> None:
        """Decode role: wait for the request's KV. Prefill role: note its bootstrap room."""
        if self.role == "decode":
            await self._await_kv(body)
        elif self.role == "prefill":
            room = body.get("bootstrap_room")
            if isinstance(room, list):
                room = room[0] if room else None
            gen.room = None if room is None else str(room)

    async def _run(self, gen: Generation, body: dict) -> None:
        await self._before_queue(gen, body)
        self.scheduler.submit(gen)
        await gen.done

    async def _await_kv(self, body: dict) -> None:
        room, host, port = body.get("bootstrap_room"), body.get("bootstrap_host"), body.get("bootstrap_port")
        if isinstance(room, list):
            room = room[0] if room else None
        if isinstance(host, list):
            host = host[0] if host else None
        if isinstance(port, list):
            port = port[0] if port else None
        if room is not None and port and host:
            try:
                await self.kv.wait(str(host), int(port), str(room))
            except asyncio.TimeoutError:
                raise RequestError(f"KV transfer for bootstrap room {room} timed out after "
                                   f"{self.config.kv_timeout_s:g} s", 500) from None
            except (OSError, aiohttp.ClientError) as exc:
                raise RequestError(f"KV bootstrap at {host}:{port} failed: {exc!r}", 500) from None
        elif room is not None and not self._warned_remote_bootstrap:
            self._warned_remote_bootstrap = True
            log.warning("request has a bootstrap room but no bootstrap host/port: decode waits "
                        "--sim-kv-transfer-ms only")
        if self.config.kv_transfer_ms:
            await asyncio.sleep(self.config.kv_transfer_ms / 1000.0)

    def _prefill_done(self, batch: list[Generation]) -> None:
        rooms = [g.room for g in batch if g.room is not None]
        if rooms:
            self.board.complete(rooms)

    async def _stream(self, request: web.Request, gen: Generation, body: dict, make_sink) -> web.StreamResponse:
        await self._before_queue(gen, body)  # KV hand-off errors still get a proper status code
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        io = ChunkWriter(request.transport, resp.headers.get("Transfer-Encoding") == "chunked")
        gen.out = make_sink(io)
        if isinstance(gen.out, ChatStream):
            io.write(gen.out.role_chunk())
        self.scheduler.submit(gen)
        try:
            await gen.done
            await resp.write_eof()
        except ConnectionError:
            gen.aborted = True
        except asyncio.CancelledError:
            gen.aborted = True
            raise
        return resp

    def _text(self, gen: Generation) -> str:
        texts = self.vocab.candidate_text
        return "".join([texts[i] for i in gen.tokens if i >= 0])

    def _output_ids(self, gen: Generation) -> list[int]:
        ids, eos = self.vocab.candidate_ids, self.vocab.eos_id
        return [ids[i] if i >= 0 else eos for i in gen.tokens if i != -2]

    def _usage(self, gen: Generation) -> dict:
        return {"prompt_tokens": gen.prompt_tokens, "total_tokens": gen.prompt_tokens + gen.n_out,
                "completion_tokens": gen.n_out, "prompt_tokens_details": None}

    def _not_ready(self) -> web.Response | None:
        return None if self.ready else error_response(503, "The server is not ready yet.")
