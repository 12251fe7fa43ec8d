"""The job file's load sections: `benchmark` (sa-bench, evals, custom commands, client nodes) and
`profiling`. Part of the job model (srt_agent.job_config re-exports them)."""
# no `from __future__ import annotations`: pydantic reads the field types as objects, not strings to compile
# (CLI start-up); quote a forward reference (-> "Model") and import at run time what an annotation names

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from .cluster_config import Strict
from .custom_command import check_custom, normalize_env
from .evals.config import EVAL_KEYS, EVAL_TYPES, AccuracySection
from .loadgen.config import LOAD_DEFAULTS  # the load generator's defaults: defined there, once


def parse_concurrencies(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        parts = [p for p in re.split(r"[x,\s]+", value.strip()) if p]
        try:
            out = [int(p) for p in parts]
        except ValueError:
            raise ValueError("concurrencies must be a list of integers or a string like '64x128x256'") from None
    elif isinstance(value, list):
        out = []
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"concurrency {v!r} is not an integer")
            out.append(v)
    else:
        raise ValueError("concurrencies must be a list of integers or a string like '64x128x256'")
    if not out or any(c < 1 for c in out):
        raise ValueError("concurrencies must be positive integers")
    return out


TRACE_KEYS = ("trace_file", "ttft_threshold_ms", "itl_threshold_ms")


def check_trace(b) -> None:
    """trace-replay takes its lengths and send times from the trace; its keys belong to it alone."""
    if b.type != "trace-replay":
        stray = [k for k in TRACE_KEYS if getattr(b, k) is not None]
        if stray:
            raise ValueError(f"{', '.join(stray)} only apply to benchmark type trace-replay")
        return
    if b.trace_file is None:
        raise ValueError("benchmark type 'trace-replay' needs trace_file (a Mooncake-format JSONL trace)")
    if not b.trace_file.startswith("/"):
        raise ValueError(f"trace_file {b.trace_file!r} must be an absolute path (the agent reads it on the head node)")
    given = [k for k in ("isl", "osl") if getattr(b, k) is not None] + (["req_rate"] if b.req_rate != "inf" else [])
    if given:
        raise ValueError(f"{', '.join(given)} do not apply to trace-replay: the trace gives every request's "
                         "lengths and send time")


class BenchmarkSection(Strict):
    type: Literal["sa-bench", "trace-replay", "manual", "gsm8k", "mmlu", "gpqa", "custom"] = Field("manual", description="`sa-bench` sweeps concurrencies; `trace-replay` replays a request trace (docs/benchmarking.md); `gsm8k`, `mmlu`, `gpqa` run an accuracy eval (docs/evals.md); `custom` runs your own command once (docs/benchmarking.md); `manual` serves until the job ends")
    isl: int | None = Field(None, ge=1, description="input sequence length (tokens)")
    osl: int | None = Field(None, ge=1, description="output sequence length (tokens)")
    concurrencies: list[int] | None = Field(None, description="a list, or a string like '64x128x256'; "
                                            "trace-replay: one replay per cap on requests in flight (default: one, uncapped)")
    trace_file: str | None = Field(None, min_length=1, description="trace-replay: the trace, a JSONL file in the "
                                   "Mooncake format (absolute path the head node reads; docs/benchmarking.md)")
    ttft_threshold_ms: float | None = Field(None, gt=0, description="trace-replay: goodput counts the requests "
                                            "whose TTFT is at most this")
    itl_threshold_ms: float | None = Field(None, gt=0, description="trace-replay: ... and whose mean gap "
                                           "between tokens (TPOT) is at most this")
    req_rate: float | Literal["inf"] = Field("inf", description="'inf' for max throughput, or requests/s (Poisson)")
    warmup_multiplier: float = Field(LOAD_DEFAULTS["warmup_multiplier"], ge=0, description="warmup requests = multiplier x concurrency")
    prompt_multiplier: float = Field(LOAD_DEFAULTS["prompt_multiplier"], gt=0, description="measured requests = multiplier x concurrency")
    random_range_ratio: float = Field(LOAD_DEFAULTS["random_range_ratio"], gt=0, le=1, description="ISL/OSL drawn from [ratio*len, len]")
    seed: int = Field(LOAD_DEFAULTS["seed"], description="seed for prompts")
    max_failed_fraction: float = Field(LOAD_DEFAULTS["max_failed_fraction"], ge=0, le=1, description="a point with more failed requests fails the job")
    processes: int | None = Field(None, ge=1, le=64, description="load-generator processes; default: automatic")
    expected_itl_ms: float | None = Field(None, gt=0, description="expected gap between output tokens (ms): sizes "
                                          "the automatic process count and the load generator's ITL check; "
                                          "default: 10 ms assumed for sizing, no check")
    metrics_interval_s: float = Field(1.0, ge=0, description="scrape every worker's, frontend's and router's "
                                      "Prometheus page this often during each point; 0 turns it off")
    dataset_path: str | None = Field(None, min_length=1, description="eval types: the local dataset (docs/evals.md)")
    num_examples: int | None = Field(None, ge=1, description="eval types: questions evaluated; default: all")
    num_shots: int | None = Field(None, ge=0, le=20, description="eval types: few-shot examples; default 5 (gsm8k, mmlu), 0 (gpqa)")
    concurrency: int | None = Field(None, ge=1, le=4096, description="eval types: requests in flight; default 64")
    max_tokens: int | None = Field(None, ge=1, description="eval types: completion limit; default 512 (gsm8k), 8 (mmlu), 2048 (gpqa)")
    min_score: float | None = Field(None, ge=0, le=1, description="eval types: below it the job fails")
    repeat: int | None = Field(None, ge=1, le=64, description="eval types: runs of the whole eval; the score is their mean (each run and the stdev are recorded)")
    accuracy: AccuracySection | None = Field(None, description="sa-bench: an eval gate run before the first point")
    command: str | list[str] | None = Field(None, description="custom: your benchmark command, a shell string (run with `bash -lc`) or an argv list")
    env: dict[str, str] = Field(default_factory=dict, description="custom: extra environment of the command (besides SRT_ENDPOINT_URL, SRT_MODEL, SRT_RESULTS_DIR)")
    timeout_s: float | None = Field(None, gt=0, description="custom: the command is stopped and the job fails after this long; default 24 h")
    client_nodes: int = Field(1, ge=1, le=256, description="sa-bench: nodes the load generator runs on, one start "
                              "instant, one merged result (docs/benchmarking.md, \"Across nodes\")")
    client_placement: Literal["shared", "dedicated"] = Field("shared", description="sa-bench: `shared` runs the "
                                                             "client on the job's first nodes; `dedicated` adds client_nodes nodes to the allocation")
    max_connections_per_pair: int = Field(25_000, ge=1, le=60_000, description="sa-bench: most connections one client "
                                          "node opens to one server address (ip:port); the ephemeral port range allows ~28k")

    @field_validator("concurrencies", mode="before")
    @classmethod
    def _conc(cls, v: Any) -> Any:
        return None if v is None else parse_concurrencies(v)

    @field_validator("env", mode="before")
    @classmethod
    def _custom_env(cls, v: Any) -> Any:
        return normalize_env(v)

    @field_validator("req_rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lower() in ("inf", "infinity"):
            return "inf"
        return v

    @model_validator(mode="after")
    def _needs(self) -> "BenchmarkSection":
        if self.type == "sa-bench":
            missing = [k for k in ("isl", "osl", "concurrencies") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"benchmark type 'sa-bench' needs {', '.join(missing)}")
        check_trace(self)
        for path in (self.dataset_path, self.accuracy.dataset_path if self.accuracy else None):
            if path is not None and not path.startswith("/"):
                raise ValueError(f"dataset_path {path!r} must be an absolute path (compute nodes read it too)")
        if self.type in EVAL_TYPES and self.dataset_path is None:
            raise ValueError(f"benchmark type '{self.type}' needs dataset_path")
        stray = [k for k in EVAL_KEYS if self.type not in EVAL_TYPES and getattr(self, k) is not None]
        if stray:
            raise ValueError(f"{', '.join(stray)} only apply to benchmark types gsm8k, mmlu, gpqa; in front of a "
                             f"sa-bench sweep put them under accuracy: {{task: ..., dataset_path: ...}}")
        if self.accuracy is not None and self.type != "sa-bench":
            raise ValueError("accuracy gates a sa-bench sweep; for an eval alone set type: gsm8k, mmlu or gpqa")
        if isinstance(self.req_rate, (int, float)) and self.req_rate <= 0:
            raise ValueError("req_rate must be 'inf' or a positive number")
        clients = [k for k in ("client_nodes", "client_placement", "max_connections_per_pair")  # set to other than
                   if getattr(self, k) != type(self).model_fields[k].default]  # the default (resolved.json has all)
        if clients and self.type != "sa-bench":
            raise ValueError(f"{', '.join(clients)} only apply to benchmark type sa-bench (where the load generator runs)")
        check_custom(self)
        return self


class ProfilingSteps(Strict):
    """Profiled steps of one role, overriding profiling.start_step/stop_step."""

    start_step: int | None = Field(None, ge=0, description="first profiled step of this role")
    stop_step: int | None = Field(None, ge=1, description="step after the last profiled one of this role")


class ProfilingSection(Strict):
    type: Literal["none", "torch", "nsys"] = Field("none", description="none, torch or nsys")
    isl: int = Field(1024, ge=1, description="input length of the profiling load")
    osl: int = Field(128, ge=1, description="output length of the profiling load")
    concurrency: int = Field(24, ge=1, description="concurrency of the profiling load")
    start_step: int = Field(0, ge=0, description="first profiled step")
    stop_step: int = Field(50, ge=1, description="step after the last profiled one")
    nsys_binary: str = Field("nsys", description="nsys executable (type nsys)")
    prefill: ProfilingSteps | None = Field(None, description="start_step/stop_step of the prefill workers")
    decode: ProfilingSteps | None = Field(None, description="start_step/stop_step of the decode workers")
    aggregated: ProfilingSteps | None = Field(None, description="start_step/stop_step of the aggregated workers")

    @model_validator(mode="after")
    def _steps(self) -> "ProfilingSection":
        for role in ("prefill", "decode", "agg"):
            start, stop = self.steps(role)
            if stop <= start:
                where = "" if getattr(self, "aggregated" if role == "agg" else role) is None else f" ({role})"
                raise ValueError(f"stop_step must be greater than start_step{where}")
        return self

    def steps(self, role: str) -> tuple[int, int]:
        """(start_step, stop_step) of a role's workers."""
        own = getattr(self, "aggregated" if role == "agg" else role, None)
        start = own.start_step if own and own.start_step is not None else self.start_step
        stop = own.stop_step if own and own.stop_step is not None else self.stop_step
        return start, stop

    @property
    def max_stop_step(self) -> int:
        return max(self.steps(r)[1] for r in ("prefill", "decode", "agg"))
