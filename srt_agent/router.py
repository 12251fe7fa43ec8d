"""The sglang router's command line (backend.use_sglang_router): workers by role, metrics on the job's port."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plan import WorkerSpec
    from .resolved import ResolvedJob


def router_command(r: ResolvedJob, workers: list[WorkerSpec], python: str, host: str, port: int,
                   metrics_port: int) -> list[str]:
    # the metrics exporter defaults to 0.0.0.0:29000: bind it to the job's host and own port
    cmd = [python, "-m", "sglang_router.launch_router", "--host", host, "--port", str(port),
           "--prometheus-host", host, "--prometheus-port", str(metrics_port)]
    if r.job.mode == "disaggregated":
        cmd.append("--pd-disaggregation")
        for w in workers:
            if w.role == "prefill":
                cmd += ["--prefill", w.url or "", str(w.bootstrap_port)]
        for w in workers:
            if w.role == "decode":
                cmd += ["--decode", w.url or ""]
    else:
        cmd += ["--worker-urls", *[w.url or "" for w in workers], "--policy", "round_robin"]
    return cmd
