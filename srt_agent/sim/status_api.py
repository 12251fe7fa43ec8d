"""The simulated server's status endpoints: health, server and model info, models, flush_cache,
the profiler's start/stop, version, metrics. A mixin of SimServer (server.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from srt_agent.sim.http_common import RequestError, error_response, int_field
from srt_agent.sim.metrics import render_metrics
from srt_agent.sim.profiler import ProfileError
from srt_agent.sim.streams import COLLECTOR

VERSION = "0.0.0+srt-sim"
HEALTH_GENERATE_TIMEOUT_S = 20.0


class StatusEndpoints:
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
                                start_step=int_field(body.get("start_step"), "start_step", None),
                                num_steps=int_field(body.get("num_steps"), "num_steps", None),
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
        return web.Response(text=render_metrics(self.config, self.scheduler), content_type="text/plain")
