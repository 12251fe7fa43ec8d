"""Settings of one simulated SGLang worker and the timing formulas they feed.

The formulas live here, next to their parameters, so docs/simulated-engine.md, the scheduler and
the tests read the same definitions:

    prefill_seconds(tokens) = tokens / (prefill_tokens_per_s_per_gpu * tp_size)   (0 if rate 0)
    decode_step_seconds(n)  = (decode_step_ms + decode_step_ms_per_request * ceil(n / dp_size)) / 1000

`n` is the number of running requests of the whole worker; with data parallelism each DP rank
holds about n / dp_size of them, and a step lasts as long as the fullest rank's step.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math

ROLES = ("null", "prefill", "decode")

# Simulator defaults (documented in docs/simulated-engine.md).
DEFAULT_PREFILL_TOKENS_PER_S_PER_GPU = 20000.0
DEFAULT_DECODE_STEP_MS = 20.0
DEFAULT_DECODE_STEP_MS_PER_REQUEST = 0.02
DEFAULT_MAX_RUNNING_REQUESTS = 1024
DEFAULT_STARTUP_S = 0.0
DEFAULT_KV_TRANSFER_MS = 10.0
DEFAULT_KV_TIMEOUT_S = 300.0
DEFAULT_EOS_PROBABILITY = 0.002
DEFAULT_SEED = 0
# SGLang's own defaults for the flags the simulator honours.
DEFAULT_PORT = 30000
DEFAULT_BOOTSTRAP_PORT = 8998
DEFAULT_MAX_PREFILL_TOKENS = 16384
DEFAULT_CONTEXT_LENGTH = 131072


@dataclasses.dataclass(frozen=True)
class SimConfig:
    """Everything one simulated worker needs; built by `srt_agent.sim.cli.parse_config`."""

    model_path: str = "sim-model"
    tokenizer_path: str | None = None
    served_model_name: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tp_size: int = 1
    dp_size: int = 1
    ep_size: int = 1
    disaggregation_mode: str = "null"
    disaggregation_bootstrap_port: int = DEFAULT_BOOTSTRAP_PORT
    dist_init_addr: str | None = None
    nnodes: int = 1
    node_rank: int = 0
    max_running_requests: int | None = None
    max_prefill_tokens: int = DEFAULT_MAX_PREFILL_TOKENS
    stream_interval: int = 1
    context_length: int = DEFAULT_CONTEXT_LENGTH
    # --sim-* parameters
    prefill_tokens_per_s_per_gpu: float = DEFAULT_PREFILL_TOKENS_PER_S_PER_GPU
    decode_step_ms: float = DEFAULT_DECODE_STEP_MS
    decode_step_ms_per_request: float = DEFAULT_DECODE_STEP_MS_PER_REQUEST
    sim_max_running_requests: int | None = None
    startup_s: float = DEFAULT_STARTUP_S
    kv_transfer_ms: float = DEFAULT_KV_TRANSFER_MS
    kv_timeout_s: float = DEFAULT_KV_TIMEOUT_S
    eos_probability: float = DEFAULT_EOS_PROBABILITY
    seed: int = DEFAULT_SEED
    answers_dataset: str | None = None
    answers_accuracy: float = 1.0
    # SGLang flags the simulator accepts but does not model: {"mem_fraction_static": "0.8", ...}
    ignored_args: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.disaggregation_mode not in ROLES:
            raise ValueError(f"disaggregation_mode must be one of {ROLES}, got {self.disaggregation_mode!r}")
        for name in ("tp_size", "dp_size", "ep_size", "nnodes", "stream_interval", "max_prefill_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0 <= self.node_rank < self.nnodes:
            raise ValueError(f"node_rank must be in [0, nnodes), got {self.node_rank} of {self.nnodes}")
        for name in ("prefill_tokens_per_s_per_gpu", "decode_step_ms", "decode_step_ms_per_request",
                     "startup_s", "kv_transfer_ms", "kv_timeout_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"--sim-{name.replace('_', '-')} must be >= 0")
        if not 0 <= self.answers_accuracy <= 1:
            raise ValueError("--sim-answers-accuracy must be within [0, 1]")
        if not 0 <= self.eos_probability <= 1:
            raise ValueError("--sim-eos-probability must be within [0, 1]")
        if self.effective_max_running_requests < 1:
            raise ValueError("max running requests must be >= 1")

    @property
    def role(self) -> str:
        """'prefill', 'decode' or 'aggregated'."""
        return "aggregated" if self.disaggregation_mode == "null" else self.disaggregation_mode

    @property
    def model_name(self) -> str:
        return self.served_model_name or self.model_path

    @property
    def effective_max_running_requests(self) -> int:
        """--sim-max-running-requests if given, else SGLang's --max-running-requests, else 1024."""
        if self.sim_max_running_requests is not None:
            return self.sim_max_running_requests
        if self.max_running_requests is not None:
            return self.max_running_requests
        return DEFAULT_MAX_RUNNING_REQUESTS

    def prefill_seconds(self, tokens: int) -> float:
        rate = self.prefill_tokens_per_s_per_gpu * self.tp_size
        return tokens / rate if rate > 0 else 0.0

    def decode_step_seconds(self, running: int) -> float:
        per_rank = math.ceil(running / self.dp_size)
        return (self.decode_step_ms + self.decode_step_ms_per_request * per_rank) / 1000.0


def is_loopback_host(host: str | None) -> bool:
    """127.0.0.0/8, ::1 or "localhost": the only addresses the simulator listens on or contacts."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
