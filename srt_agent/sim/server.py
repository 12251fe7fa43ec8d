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
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import aiohttp
from aiohttp import web

from srt_agent.sim.config import SimConfig
from srt_agent.sim.engine import Generation, Scheduler
from srt_agent.sim.kv_link import KvLinkClient, RoomBoard
from srt_agent.sim.profiler import ProfileError, Profiler
from srt_agent.sim.streams import (
    COLLECTOR,
    ChatStream,
    ChunkWriter,
    CompletionStream,
    GenerateStream,
    generate_finish,
)
from srt_agent.sim.vocab import Vocab

log = logging.getLogger("srt_agent.sim")

VERSION = "0.0.0+srt-sim"
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
# Prompts longer than this (characters) are tokenized in a worker thread (tokenizers frees the GIL).
OFFLOAD_TOKENIZE_CHARS = 16384
HEALTH_GENERATE_TIMEOUT_S = 20.0
READY_LINE = "The server is fired up and ready to roll!"


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> web.Response:
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return web.json_response({"object": "error", "message": message, "type": kind, "param": None,
                              "code": status}, status=status)


def _int(value: object, name: str, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise RequestError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _single(value: object, name: str) -> object:
    """Unwrap a one-element batch; reject real batches (the simulator serves n=1 requests)."""
    if isinstance(value, list) and value and isinstance(value[0], (str, list)):
        if len(value) != 1:
            raise RequestError(f"batched {name} is not supported by the simulated engine")
        return value[0]
    return value


class SimServer:
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
        prompt = _single(prompt, name)
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

    # -- OpenAI endpoints -----------------------------------------------------------------
    async def completions(self, request: web.Request) -> web.StreamResponse:
        try:
            if (busy := self._not_ready()) is not None:
                return busy
            body = await self._json(request)
            if body.get("n", 1) != 1:
                raise RequestError("n > 1 is not supported by the simulated engine")
            prompt_tokens, key = await self._prompt(body.get("prompt"), "prompt")
            answer = self._answer(body.get("prompt"), body)
            gen = self._generation(prompt_tokens, key, _int(body.get("max_tokens"), "max_tokens", 16),
                                   _int(body.get("min_tokens"), "min_tokens", 0), bool(body.get("ignore_eos")),
                                   keep_tokens=not body.get("stream"), answer=answer)
            rid = "cmpl-" + gen.rid
            model = body.get("model") or self.config.model_name
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, gen, body, lambda io: CompletionStream(
                    io, self.vocab, self.config.stream_interval, usage, rid=rid, created=int(time.time()),
                    model=str(model)))
            gen.out = COLLECTOR
            await self._run(gen, body)
            return web.json_response({
                "id": rid, "object": "text_completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "text": answer if answer is not None else self._text(gen), "logprobs": None,
                             "finish_reason": gen.finish_reason,
                             "matched_stop": self.vocab.eos_id if gen.finish_reason == "stop" else None}],
                "usage": self._usage(gen)})
        except RequestError as exc:
            return error_response(exc.status, str(exc))

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            if (busy := self._not_ready()) is not None:
                return busy
            body = await self._json(request)
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise RequestError("messages must be a non-empty list of objects")
            if body.get("n", 1) != 1:
                raise RequestError("n > 1 is not supported by the simulated engine")
            prompt = self.vocab.render_chat(messages)
            prompt_tokens = await self._count(prompt)
            max_new = body.get("max_completion_tokens", body.get("max_tokens"))
            max_new = _int(max_new, "max_tokens", self.config.context_length)
            answer = self._answer(messages[-1].get("content"), body)  # the question, without the chat template
            gen = self._generation(prompt_tokens, prompt.encode(), max_new,
                                   _int(body.get("min_tokens"), "min_tokens", 0), bool(body.get("ignore_eos")),
                                   keep_tokens=not body.get("stream"), answer=answer)
            rid = "chatcmpl-" + gen.rid
            model = body.get("model") or self.config.model_name
            if body.get("stream"):
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._stream(request, gen, body, lambda io: ChatStream(
                    io, self.vocab, self.config.stream_interval, usage, rid=rid, created=int(time.time()),
                    model=str(model)))
            gen.out = COLLECTOR
            await self._run(gen, body)
            return web.json_response({
                "id": rid, "object": "chat.completion", "created": int(time.time()), "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant",
                                                     "content": answer if answer is not None else self._text(gen),
                                                     "reasoning_content": None, "tool_calls": None},
                             "logprobs": None, "finish_reason": gen.finish_reason,
                             "matched_stop": self.vocab.eos_id if gen.finish_reason == "stop" else None}],
                "usage": self._usage(gen)})
        except RequestError as exc:
            return error_response(exc.status, str(exc))

    # -- SGLang native --------------------------------------------------------------------
    async def generate(self, request: web.Request) -> web.StreamResponse:
        try:
            if (busy := self._not_ready()) is not None:
                return busy
            body = await self._json(request)
            if body.get("input_ids") is not None:
                prompt_tokens, key = await self._prompt(body["input_ids"], "input_ids")
            elif body.get("text") is not None:
                prompt_tokens, key = await self._prompt(body["text"], "text")
            else:
                raise RequestError("Either text or input_ids should be provided.")
            params = body.get("sampling_params") or {}
            if not isinstance(params, dict):
                raise RequestError("sampling_params must be an object")
            rid = body.get("rid")
            gen = self._generation(prompt_tokens, key, _int(params.get("max_new_tokens"), "max_new_tokens", 128),
                                   _int(params.get("min_new_tokens"), "min_new_tokens", 0),
                                   bool(params.get("ignore_eos")), rid=rid if isinstance(rid, str) else None,
                                   keep_tokens=not body.get("stream"))
            t0 = asyncio.get_running_loop().time()
            if body.get("stream"):
                return await self._stream(request, gen, body, lambda io: GenerateStream(
                    io, self.vocab, self.config.stream_interval, rid=gen.rid, t0=t0))
            gen.out = COLLECTOR
            await self._run(gen, body)
            return web.json_response({
                "text": self._text(gen), "output_ids": self._output_ids(gen),
                "meta_info": {"id": gen.rid,
                              "finish_reason": json.loads(generate_finish(gen.finish_reason, gen.n_out,
                                                                          self.vocab.eos_id)),
                              "prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.n_out,
                              "cached_tokens": 0,
                              "e2e_latency": round(asyncio.get_running_loop().time() - t0, 6)}})
        except RequestError as exc:
            return error_response(exc.status, str(exc))

    # -- status endpoints -----------------------------------------------------------------
    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self.ready else 503)

    async def health_generate(self, request: web.Request) -> web.Response:
        if not self.ready:
            return web.Response(status=503)
        gen = self._generation(1, b"health_generate", 1, 0, True, keep_tokens=False)
        gen.out = COLLECTOR
        self.scheduler.submit(gen)
        try:
            await asyncio.wait_for(asyncio.shield(gen.done), HEALTH_GENERATE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError):
            gen.aborted = True
            return web.Response(status=503)
        return web.Response(status=200)

    def server_args(self) -> dict:
        cfg = self.config
        args = dict(cfg.ignored_args)
        args.update({
            "model_path": self.reported_model_path,
            "tokenizer_path": self.tokenizer_path,
            "served_model_name": cfg.model_name,
            "host": cfg.host,
            "port": cfg.port,
            "tp_size": cfg.tp_size,
            "dp_size": cfg.dp_size,
            "ep_size": cfg.ep_size,
            "pp_size": 1,
            "nnodes": cfg.nnodes,
            "node_rank": cfg.node_rank,
            "dist_init_addr": cfg.dist_init_addr,
            "disaggregation_mode": cfg.disaggregation_mode,
            "disaggregation_bootstrap_port": cfg.disaggregation_bootstrap_port,
            "max_running_requests": cfg.effective_max_running_requests,
            "max_prefill_tokens": cfg.max_prefill_tokens,
            "context_length": cfg.context_length,
            "stream_interval": cfg.stream_interval,
            "skip_tokenizer_init": False,
        })
        return args

    async def server_info(self, request: web.Request) -> web.Response:
        cfg = self.config
        info = self.server_args()
        info.update({
            "version": VERSION,
            "simulated": True,
            "sim": {
                "role": self.role, "node": self.node, "vocab": self.vocab.source,
                "model_path_arg": cfg.model_path,
                "prefill_tokens_per_s_per_gpu": cfg.prefill_tokens_per_s_per_gpu,
                "decode_step_ms": cfg.decode_step_ms,
                "decode_step_ms_per_request": cfg.decode_step_ms_per_request,
                "kv_transfer_ms": cfg.kv_transfer_ms, "startup_s": cfg.startup_s,
                "eos_probability": cfg.eos_probability, "seed": cfg.seed,
                "ignored_args": sorted(cfg.ignored_args),
            },
            "internal_states": [{
                "num_running_reqs": self.scheduler.num_running,
                "num_waiting_reqs": self.scheduler.num_waiting,
                "forward_ct": self.scheduler.forward_ct,
                "max_total_num_tokens": cfg.context_length * cfg.effective_max_running_requests,
            }],
        })
        return web.json_response(info)

    async def model_info(self, request: web.Request) -> web.Response:
        model_type, architectures = "llama", ["LlamaForCausalLM"]
        config_path = Path(self.tokenizer_path) / "config.json"
        try:
            hf = json.loads(config_path.read_text())
            model_type = hf.get("model_type", model_type)
            architectures = hf.get("architectures", architectures)
        except (OSError, ValueError):
            pass
        return web.json_response({
            "model_path": self.reported_model_path, "tokenizer_path": self.tokenizer_path,
            "is_generation": True, "preferred_sampling_params": None, "weight_version": "default",
            "has_image_understanding": False, "has_audio_understanding": False,
            "model_type": model_type, "architectures": architectures})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{
            "id": self.config.model_name, "object": "model", "created": self.created, "owned_by": "sglang",
            "root": self.config.model_path, "max_model_len": self.config.context_length}]})

    async def flush_cache(self, request: web.Request) -> web.Response:
        return web.Response(text="Cache flushed.\nPlease check backend logs for more details. (When there "
                                 "are running or waiting requests, the operation will not be performed.)\n")

    async def start_profile(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request) if request.method == "POST" else {}
            activities = body.get("activities")
            if activities is not None and not (isinstance(activities, list)
                                               and all(isinstance(a, str) for a in activities)):
                raise RequestError("activities must be a list of strings")
            self.profiler.start(self.scheduler.forward_ct, output_dir=body.get("output_dir"),
                                start_step=_int(body.get("start_step"), "start_step", None),
                                num_steps=_int(body.get("num_steps"), "num_steps", None),
                                activities=activities)
        except (RequestError, ProfileError) as exc:
            return error_response(400, str(exc))
        return web.Response(text="Start profiling.\n")

    async def stop_profile(self, request: web.Request) -> web.Response:
        try:
            await self.profiler.stop()
        except ProfileError as exc:
            return error_response(400, str(exc))
        return web.Response(text="Stop profiling. This will take some time.\n")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": VERSION})

    async def metrics(self, request: web.Request) -> web.Response:
        from srt_agent.sim.metrics import render_metrics

        return web.Response(text=render_metrics(self.config, self.scheduler), content_type="text/plain")
