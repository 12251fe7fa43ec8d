"""Real SGLang: behind Dynamo frontends (`python -m dynamo.sglang`) or behind the sglang router
(`python -m sglang.launch_server`).

Both add `--enable-metrics` (SGLang's Prometheus exporter, which the per-point server-metrics
scrape reads) unless the role's sglang_config sets `enable-metrics` itself, to true or false.
"""

from __future__ import annotations

from ..errors import ProfilingError
from .base import DynamoEndpoint, RouterEndpoint, WorkerArgs, WorkerLaunch, user_set

METRICS_FLAG = "enable-metrics"


def metrics_flags(a: WorkerArgs) -> list[str]:
    return [] if user_set(a.r.job.role_flags(a.role), METRICS_FLAG) else [f"--{METRICS_FLAG}"]


class SglangRouter(RouterEndpoint):
    """SGLang's own HTTP server on every worker leader, behind the sglang router."""

    name = "sglang-router"
    engine = "sglang"
    flag_vocabulary = ("sglang",)

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        module = "sglang.launch_server"
        cmd = [a.python, "-m", module, *a.common_flags(), "--host", a.host, "--port", str(a.http_port),
               *a.mode_flags(), *a.multi_node_flags(), *metrics_flags(a), *a.user_flags]
        return WorkerLaunch(cmd, {}, a.http_port, "/health", module)


class SglangDynamo(DynamoEndpoint):
    """SGLang inside Dynamo's worker (`dynamo.sglang`): no HTTP server of its own, Dynamo's system server."""

    name = "sglang-dynamo"
    engine = "sglang"
    installs_dynamo = True
    flag_vocabulary = ("sglang", "dynamo-sglang")
    profile_404_hint = (" (this Dynamo release has no SGLang profiling routes: use a newer "
                        "backend.dynamo_version, or backend.use_sglang_router: true)")

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        module = "dynamo.sglang"
        cmd = [a.python, "-m", module, *a.common_flags(), *a.mode_flags(), *a.multi_node_flags(), *metrics_flags(a),
               *a.user_flags]
        return WorkerLaunch(cmd, a.dynamo_env(), a.system_port, "/health", module)

    def profile_control_url(self, plan, worker) -> str:
        leader = plan.process(worker.processes[0])
        if leader.port is None:
            raise ProfilingError(
                f"{worker.name}: SGLang behind Dynamo is profiled through the Dynamo system server, "
                f"but the worker has no DYN_SYSTEM_PORT; set backend.use_sglang_router: true to profile "
                f"through SGLang's own HTTP server")
        return f"http://{leader.address}:{leader.port}/engine"
