"""Dynamo's mocker (`python -m dynamo.mocker`): Dynamo's CPU-only simulated engine behind Dynamo
frontends. It takes its own flags (backend.mocker), not sglang_config, and has no profiler; it and its
frontends run on the host, from cluster `dynamo_venv` when set."""

from __future__ import annotations

from ..dynamo import mocker_command
from ..errors import ConfigError, ProfilingError
from ..sglang_flags import sglang_flags
from .base import DynamoEndpoint, WorkerArgs, WorkerLaunch

OWNED = ("model-path", "model-name", "endpoint", "engine-type", "disaggregation-mode", "speedup-ratio")
OFFLINE = {"HF_HUB_OFFLINE": "1"}


class MockerEngine(DynamoEndpoint):
    name = "dynamo-mocker"
    engine = "dynamo-mocker"
    frontend_in_container = False

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        r, mocker = a.r, a.r.job.backend.mocker
        section = getattr(mocker, "aggregated" if a.role == "agg" else a.role)
        cmd = mocker_command(python=self.frontend_python(r, a.python), model_path=a.model_path,
                             served_model_name=a.served, mode=a.role if a.role in ("prefill", "decode") else None,
                             engine_type=mocker.engine_type, speedup_ratio=mocker.speedup_ratio,
                             extra_args=sglang_flags(section, skip=OWNED))
        return WorkerLaunch(cmd, {**a.dynamo_env(), **OFFLINE}, a.system_port, "/health", None)

    def help_command(self, worker) -> list[str] | None:
        return None  # the mocker takes no sglang flags

    def frontend_python(self, r, default: str) -> str:
        return f"{r.cluster.dynamo_venv}/bin/python" if r.cluster.dynamo_venv else default

    def frontend_env(self) -> dict[str, str]:
        return dict(OFFLINE)

    def job_errors(self, job, doc) -> list[ConfigError]:
        if job.profiling.type == "none":
            return []
        return [ConfigError("Dynamo's mocker has no profiler", file=doc.path,
                            line=doc.line_of(("profiling", "type")), key="profiling.type",
                            value=job.profiling.type, hint="profile with engine sglang, or sim for a dry run")]

    def profile_control_url(self, plan, worker) -> str:
        raise ProfilingError(
            f"{worker.name}: engine dynamo-mocker has no profiler; profiling needs backend.engine sglang "
            f"(with use_sglang_router: true, or Dynamo with SGLang engine routes) or sim")

    def endpoint_error(self, doc) -> ConfigError:
        """The job asked for the sglang router, which the mocker cannot register with."""
        return ConfigError("the dynamo-mocker engine only runs behind Dynamo frontends", file=doc.path,
                           line=doc.line_of(("backend", "use_sglang_router")), key="backend.use_sglang_router",
                           hint="set use_sglang_router: false, or engine: sim")
