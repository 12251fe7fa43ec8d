"""The simulated server's generation endpoints: OpenAI completions and chat completions, SGLang's
native /generate; streaming (SSE) or not. A mixin of SimServer (server.py), which supplies the
scheduler, the vocabulary and the request plumbing (_json, _prompt, _generation, _run, _stream)."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from srt_agent.sim.http_common import RequestError, error_response, int_field
from srt_agent.sim.streams import COLLECTOR, ChatStream, CompletionStream, GenerateStream, generate_finish


class GenerationEndpoints:
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
            gen = self._generation(prompt_tokens, key, int_field(body.get("max_tokens"), "max_tokens", 16),
                                   int_field(body.get("min_tokens"), "min_tokens", 0), bool(body.get("ignore_eos")),
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
            max_new = int_field(max_new, "max_tokens", self.config.context_length)
            answer = self._answer(messages[-1].get("content"), body)  # the question, without the chat template
            gen = self._generation(prompt_tokens, prompt.encode(), max_new,
                                   int_field(body.get("min_tokens"), "min_tokens", 0), bool(body.get("ignore_eos")),
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
            gen = self._generation(prompt_tokens, key, int_field(params.get("max_new_tokens"), "max_new_tokens", 128),
                                   int_field(params.get("min_new_tokens"), "min_new_tokens", 0),
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
