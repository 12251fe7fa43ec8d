"""The simulated engine (`python -m srt_agent.sim`, docs/simulated-engine.md): SGLang's HTTP API and
flags, no GPU; behind the sglang router. It serves its /metrics always (no --enable-metrics)."""

from __future__ import annotations

from ..errors import ConfigError
from .base import RouterEndpoint, WorkerArgs, WorkerLaunch


class SimEngine(RouterEndpoint):
    name = "sim"
    engine = "sim"

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        s = a.r.job.backend.sim
        sim_flags = ["--sim-prefill-tokens-per-s-per-gpu", str(s.prefill_tokens_per_s_per_gpu),
                     "--sim-decode-step-ms", str(s.decode_step_ms),
                     "--sim-decode-step-ms-per-request", str(s.decode_step_ms_per_request),
                     "--sim-max-running-requests", str(s.max_running_requests),
                     "--sim-startup-s", str(s.startup_s), "--sim-kv-transfer-ms", str(s.kv_transfer_ms),
                     "--sim-seed", str(s.seed + a.worker_index)]
        if s.answers is not None:
            sim_flags += ["--sim-answers-dataset", s.answers.dataset_path,
                          "--sim-answers-accuracy", str(s.answers.accuracy)]
        module = "srt_agent.sim"
        cmd = [a.python, "-m", module, *a.common_flags(), "--host", a.host, "--port", str(a.http_port),
               *a.mode_flags(), *a.multi_node_flags(), *a.user_flags, *sim_flags]
        env = {"PYTHONPATH": a.srtctl_dir} if a.srtctl_dir else {}
        return WorkerLaunch(cmd, env, a.http_port, "/health", module)

    def endpoint_error(self, doc) -> ConfigError:
        """The job asked for Dynamo frontends, which the simulated engine cannot register with."""
        return ConfigError("the simulated engine speaks SGLang's HTTP API and runs behind the sglang router",
                           file=doc.path, line=doc.line_of(("backend", "engine")), key="backend.engine",
                           value="sim", hint="set backend.use_sglang_router: true, or engine: dynamo-mocker")
