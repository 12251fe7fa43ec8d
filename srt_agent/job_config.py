"""The job file: one YAML that describes a deployment and what to run against it."""
# no `from __future__ import annotations`: pydantic reads the field types as objects, not strings to compile
# (CLI start-up); quote a forward reference (-> "Model") and import at run time what an annotation names

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .cluster_config import Strict, check_sbatch_text, check_time_limit, new_list
from .job_load import BenchmarkSection, ProfilingSection, ProfilingSteps, parse_concurrencies  # noqa: F401 (re-exported)
from .host_mode import check_python_path
from .srun_options import check_srun_options
from .kv_events import check as check_kv_events

Role = Literal["prefill", "decode", "agg"]


class ModelSection(Strict):
    path: str = Field(..., description="model alias from srtslurm.yaml `model_paths`, or an absolute path")
    container: str | None = Field(None, description="container alias from srtslurm.yaml `containers`, an absolute .sqsh path, a registry reference pyxis imports, or `none`: no container, every process runs on the node with the host's own Python (`python`)")
    python: str | None = Field(None, description="with `container: none`: absolute path of the Python whose SGLang and Dynamo serve the job (e.g. a venv's bin/python); default: srtslurm.yaml `python`")
    precision: str | None = Field(None, description="informational label, e.g. fp8, fp4 (shown in summaries)")
    served_model_name: str | None = Field(None, description="name clients use; default: the model directory name")

    @field_validator("python")
    @classmethod
    def _python(cls, v: str | None) -> str | None:
        return check_python_path(v)


class ResourcesSection(Strict):
    gpu_type: str | None = Field(None, description="informational label, e.g. gb200, h100")
    gpus_per_node: int | None = Field(None, ge=1, le=64, description="default: srtslurm.yaml `gpus_per_node`")
    prefill_nodes: int | None = Field(None, ge=1, description="nodes for prefill workers (disaggregated)")
    decode_nodes: int | None = Field(None, ge=0, description="nodes for decode workers (disaggregated); 0: decode workers share the prefill nodes' free GPUs")
    prefill_workers: int | None = Field(None, ge=1, description="number of prefill workers")
    decode_workers: int | None = Field(None, ge=1, description="number of decode workers")
    agg_nodes: int | None = Field(None, ge=1, description="nodes for aggregated workers")
    agg_workers: int | None = Field(None, ge=1, description="number of aggregated workers")
    gpus_per_prefill: int | None = Field(None, ge=1, le=512, description="GPUs of each prefill worker; default: prefill nodes x GPUs per node / workers")
    gpus_per_decode: int | None = Field(None, ge=1, le=512, description="GPUs of each decode worker; default: derived like gpus_per_prefill")
    gpus_per_agg: int | None = Field(None, ge=1, le=512, description="GPUs of each aggregated worker; default: derived like gpus_per_prefill")

    @model_validator(mode="after")
    def _one_mode(self) -> "ResourcesSection":
        disagg = [self.prefill_nodes, self.decode_nodes, self.prefill_workers, self.decode_workers]
        agg = [self.agg_nodes, self.agg_workers]
        if any(v is not None for v in disagg) and any(v is not None for v in agg):
            raise ValueError("aggregated (agg_*) and disaggregated (prefill_*/decode_*) keys cannot be mixed")
        if any(v is not None for v in agg):
            if None in agg:
                raise ValueError("aggregated mode needs both agg_nodes and agg_workers")
        elif None in disagg:
            missing = [n for n, v in zip(("prefill_nodes", "decode_nodes", "prefill_workers", "decode_workers"), disagg) if v is None]
            raise ValueError(f"disaggregated mode needs {', '.join(missing)} (or use agg_nodes/agg_workers)")
        return self

    @property
    def mode(self) -> Literal["disaggregated", "aggregated"]:
        return "aggregated" if self.agg_nodes is not None else "disaggregated"


class SlurmSection(Strict):
    time_limit: str | None = Field(None, description="default: srtslurm.yaml `default_time_limit`")
    account: str | None = Field(None, description="default: srtslurm.yaml `default_account`")
    partition: str | None = Field(None, description="default: srtslurm.yaml `default_partition`")

    max_requeues: int = Field(1, ge=0, description="after the time-limit warning (SIGUSR1) stopped a run with work left, the agent requeues its job (`scontrol requeue`) at most this many times (counted by `SLURM_RESTART_COUNT`); 0: never")
    sbatch_directives: dict[str, str | None] = Field(default_factory=dict, description="extra `#SBATCH --KEY=VALUE` lines (value null: bare `--KEY`); options srtctl sets itself are refused")
    srun_options: dict[str, str | None] = Field(default_factory=dict, description="extra `--KEY=VALUE` options of every worker's srun step (value null or '': bare `--KEY`), from an allow-list (`srt_agent/srun_options.py`: memory, CPU/GPU binding, pyxis container options)")

    @field_validator("time_limit")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        return check_time_limit(v)

    @field_validator("srun_options", mode="before")
    @classmethod
    def _srun_options(cls, v: Any) -> Any:

        return check_srun_options(v)

    @field_validator("sbatch_directives", mode="before")
    @classmethod
    def _directives(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, str | None] = {}
        for k, val in v.items():
            key = str(k).lstrip("-")
            if not re.fullmatch(r"[a-z][a-z0-9-]*", key):
                raise ValueError(f"'{k}' is not an sbatch option name (like 'comment' or 'mem')")
            if key in SBATCH_OWNED:
                raise ValueError(f"--{key} is set by srtctl ({SBATCH_OWNED[key]})")
            if val is not None and not isinstance(val, (str, int, float, bool)):
                raise ValueError(f"the value of '{k}' must be a string, a number, true or null")
            text = None if val is None or val is True else str(val).lower() if isinstance(val, bool) else str(val)
            out[key] = check_sbatch_text(text)
        return out

    @field_validator("account", "partition")
    @classmethod
    def _sbatch_text(cls, v: str | None) -> str | None:
        return check_sbatch_text(v)


SBATCH_OWNED = {
    "job-name": "from `name`", "nodes": "from resources", "ntasks-per-node": "one agent task per node",
    "exclusive": "always", "time": "use slurm.time_limit", "account": "use slurm.account",
    "partition": "use slurm.partition", "gpus-per-node": "from resources.gpus_per_node",
    "segment": "srtslurm.yaml use_segment_sbatch_directive", "output": "the run directory",
    "signal": "the agent's early warning", "requeue": "always", "error": "the run directory",
}


class SglangConfig(Strict):
    prefill: dict[str, Any] = Field(default_factory=dict, description="SGLang flags for prefill workers")
    decode: dict[str, Any] = Field(default_factory=dict, description="SGLang flags for decode workers")
    aggregated: dict[str, Any] = Field(default_factory=dict, description="SGLang flags for aggregated workers")

    @field_validator("prefill", "decode", "aggregated", mode="before")
    @classmethod
    def _kebab(cls, v: Any) -> Any:
        if v is None:
            return {}
        if isinstance(v, dict):
            return {str(k).replace("_", "-").lstrip("-"): val for k, val in v.items()}
        return v


class SimAnswers(Strict):
    """The simulated engine answers questions of an eval dataset, correctly for about `accuracy` of them."""

    dataset_path: str = Field(..., min_length=1, description="gsm8k JSONL, MMLU directory or GPQA CSV")
    accuracy: float = Field(..., ge=0, le=1, description="fraction answered correctly (chosen per question)")


class SimSection(Strict):
    """Timing of the simulated engine (backend.engine: sim); see docs/simulated-engine.md."""

    prefill_tokens_per_s_per_gpu: float = Field(20000.0, ge=0, description="prefill throughput per GPU")
    decode_step_ms: float = Field(20.0, ge=0, description="decode step time with one running request")
    decode_step_ms_per_request: float = Field(0.02, ge=0, description="extra step time per running request")
    max_running_requests: int = Field(1024, ge=1, description="concurrent requests per worker; more wait in a queue")
    startup_s: float = Field(2.0, ge=0, description="delay before /health turns healthy")
    kv_transfer_ms: float = Field(5.0, ge=0, description="prefill->decode KV transfer delay")
    seed: int = Field(0, description="seed for generated tokens")
    answers: SimAnswers | None = Field(None, description="answer eval questions from this dataset (docs/evals.md)")


class MockerSection(Strict):
    """Options of Dynamo's mocker engine (backend.engine: dynamo-mocker)."""

    engine_type: Literal["sglang", "vllm"] = Field("sglang", description="which engine's scheduling the mocker imitates")
    speedup_ratio: float | None = Field(None, gt=0, description="mocker runs this many times faster than the modelled engine")
    prefill: dict[str, Any] = Field(default_factory=dict, description="extra `dynamo.mocker` flags of prefill workers (kebab-case)")
    decode: dict[str, Any] = Field(default_factory=dict, description="extra `dynamo.mocker` flags of decode workers")
    aggregated: dict[str, Any] = Field(default_factory=dict, description="extra `dynamo.mocker` flags of aggregated workers")


class BackendSection(Strict):
    engine: Literal["sglang", "sim", "dynamo-mocker"] = Field("sglang", description="sglang, the simulated engine `sim`, or Dynamo's CPU `dynamo-mocker`")
    prefill_environment: dict[str, str] = Field(default_factory=dict, description="extra environment for prefill workers")
    decode_environment: dict[str, str] = Field(default_factory=dict, description="extra environment for decode workers")
    aggregated_environment: dict[str, str] = Field(default_factory=dict, description="extra environment for aggregated workers")
    sglang_config: SglangConfig = Field(default_factory=SglangConfig, description="per-role SGLang flags (kebab-case; true -> bare flag; list -> repeated values)")
    enable_multiple_frontends: bool = Field(True, description="nginx + several Dynamo frontends (disaggregated)")
    num_additional_frontends: int = Field(9, ge=0, le=256, description="frontends beyond the first")
    use_sglang_router: bool = Field(False, description="sglang-router instead of nginx + Dynamo frontends")
    nginx_listen_ports: int = Field(1, ge=1, le=64, description="ports nginx listens on; the load generator spreads "
                                    "its connections over all of them (benchmark.max_connections_per_pair)")
    dynamo_version: str = Field("0.7.0", description="ai-dynamo version installed when the container lacks it")
    dynamo_install: bool = Field(True, description="false: the container already has Dynamo; nothing is installed")
    dynamo_git_ref: str | None = Field(None, description="build ai-dynamo from this git commit or branch of github.com/ai-dynamo/dynamo instead of dynamo_version (cached once per ref)")
    frontend_args: dict[str, Any] = Field(default_factory=dict, description="extra flags of each Dynamo frontend or the sglang router (kebab-case; true -> bare flag)")
    frontend_environment: dict[str, str] = Field(default_factory=dict, description="extra environment of the frontends or router")
    mocker: MockerSection = Field(default_factory=MockerSection, description="Dynamo mocker options (engine dynamo-mocker)")
    sglang_version: str | None = Field(None, description="SGLang release in the container, for checking sglang_config keys before submitting (default: read from the container name, e.g. ...sglang-v0.5.5.sqsh)")
    nats_max_payload: str = Field("64MB", description="NATS max_payload; the 1MB default breaks long disaggregated requests")
    kv_events_config: bool | dict[str, Any] | None = Field(None, description="SGLang's `--kv-events-config` (KV-cache events for Dynamo's KV router) with a per-job port per worker node: true (prefill and decode workers), or per role `prefill`/`decode`/`aggregated`: true or settings such as `topic`")
    nginx_session_affinity_header: str | None = Field(None, description="nginx in front of several Dynamo frontends: requests with this header (e.g. X-Dynamo-Session-ID) go to the frontend its value hashes to (consistent hashing); requests without it are spread")
    sim: SimSection = Field(default_factory=SimSection, description="simulated engine timing")

    @field_validator("dynamo_git_ref")
    @classmethod
    def _git_ref(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,99}", str(v)):
            raise ValueError("dynamo_git_ref must be a commit hash or branch name like 3ad7b7c or main")
        return v

    @field_validator("frontend_args", mode="before")
    @classmethod
    def _frontend_args(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {str(k).replace("_", "-").lstrip("-"): val for k, val in v.items()}
            owned = sorted(set(out) & {"host", "port", "http-host", "http-port", "prometheus-host", "prometheus-port"})
            if owned:
                raise ValueError(f"'{owned[0]}' is set by srtctl from the plan (per-job ports on the node's address)")
            return out
        return v

    @field_validator("prefill_environment", "decode_environment", "aggregated_environment", "frontend_environment", mode="before")
    @classmethod
    def _env(cls, v: Any) -> Any:
        if isinstance(v, dict):
            out = {}
            for k, val in v.items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
                    raise ValueError(f"'{k}' is not a valid environment variable name")
                out[str(k)] = "" if val is None else (str(val).lower() if isinstance(val, bool) else str(val))
            return out
        return v

    @field_validator("dynamo_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", str(v)):
            raise ValueError("dynamo_version must be a version like 0.7.0")
        return str(v)

    @field_validator("sglang_version")
    @classmethod
    def _sglang_version(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", str(v)):
            raise ValueError("sglang_version must be a version like 0.5.5")
        return None if v is None else str(v)

    @field_validator("kv_events_config", mode="before")
    @classmethod
    def _kv_events(cls, v: Any, info: ValidationInfo) -> Any:

        return check_kv_events(v, info.data.get("engine"))

    @model_validator(mode="after")
    def _kv_events_once(self) -> "BackendSection":
        sections = [n for n in ("prefill", "decode", "aggregated") if "kv-events-config" in getattr(self.sglang_config, n)]
        if self.kv_events_config and sections:
            raise ValueError(f"kv-events-config is in sglang_config.{sections[0]} and kv_events_config is set: keep one "
                             f"(kv_events_config gives each worker node its own port)")
        return self

    @field_validator("nginx_session_affinity_header")
    @classmethod
    def _affinity(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}", v):
            raise ValueError("a header name is letters, digits and '-', like X-Dynamo-Session-ID")
        return v

    @field_validator("nats_max_payload")
    @classmethod
    def _payload(cls, v: str) -> str:
        if not re.fullmatch(r"\d+( ?[KMG]B?)?", str(v).strip(), re.IGNORECASE):
            raise ValueError("nats_max_payload must be a size like 64MB or 8388608")
        return str(v).strip()


class HealthSection(Strict):
    worker_timeout_s: float = Field(3600.0, gt=0, description="deadline for every worker to report healthy (slow cold starts are normal)")
    frontend_timeout_s: float = Field(600.0, gt=0, description="deadline for frontends/router to see every worker")
    infra_timeout_s: float = Field(60.0, gt=0, description="deadline for NATS and etcd")
    shutdown_grace_s: float = Field(10.0, ge=0, description="SIGTERM -> SIGKILL grace period")


class JobConfig(Strict):
    name: str = Field(..., min_length=1, max_length=200, description="job name (SLURM job name and run directory)")
    model: ModelSection = Field(..., description="the model and the container that serves it")
    extra_mount: list[str] = Field(default_factory=new_list, description="extra container mounts 'host:container[:flags]'")
    resources: ResourcesSection = Field(..., description="nodes and workers per role: disaggregated (prefill_*/decode_*) or aggregated (agg_*)")
    slurm: SlurmSection = Field(default_factory=SlurmSection, description="SLURM settings; unset ones come from srtslurm.yaml")
    backend: BackendSection = Field(default_factory=BackendSection, description="engine, per-role flags and environment, endpoint (nginx + frontends or router)")
    benchmark: BenchmarkSection = Field(default_factory=BenchmarkSection, description="what to run against the deployment once it is ready")
    profiling: ProfilingSection = Field(default_factory=ProfilingSection, description="torch or nsys profiling (needs benchmark.type: manual)")
    health: HealthSection = Field(default_factory=HealthSection, description="readiness deadlines and shutdown grace")
    setup_script: str | None = Field(None, description="script name inside configs/ run on every worker node first (like --setup-script, which wins)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in v):
            raise ValueError("name must not contain control characters or newlines")
        return v

    @field_validator("extra_mount")
    @classmethod
    def _mounts(cls, v: list[str]) -> list[str]:
        for m in v:
            parts = str(m).split(":")
            if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/"):
                raise ValueError(f"mount '{m}' must look like '/host/dir:/container/dir[:ro]'")
            if "," in m or any(ord(c) < 32 for c in m):
                raise ValueError(f"mount '{m}' must not contain commas or control characters")
        return v

    @property
    def mode(self) -> Literal["disaggregated", "aggregated"]:
        return self.resources.mode

    @property
    def roles(self) -> list[Role]:
        return ["agg"] if self.mode == "aggregated" else ["prefill", "decode"]

    def role_counts(self, role: Role) -> tuple[int, int]:
        """(nodes, workers) for a role."""
        r = self.resources
        if role == "prefill":
            return r.prefill_nodes or 0, r.prefill_workers or 0
        if role == "decode":
            return r.decode_nodes or 0, r.decode_workers or 0
        return r.agg_nodes or 0, r.agg_workers or 0

    def role_gpus_per_worker(self, role: Role) -> int | None:
        r = self.resources
        return {"prefill": r.gpus_per_prefill, "decode": r.gpus_per_decode, "agg": r.gpus_per_agg}[role]

    def role_flags(self, role: Role) -> dict[str, Any]:
        sc = self.backend.sglang_config
        return {"prefill": sc.prefill, "decode": sc.decode, "agg": sc.aggregated}[role]

    def role_environment(self, role: Role) -> dict[str, str]:
        b = self.backend
        return {"prefill": b.prefill_environment, "decode": b.decode_environment,
                "agg": b.aggregated_environment}[role]

    @property
    def total_nodes(self) -> int:
        return sum(self.role_counts(r)[0] for r in self.roles)
