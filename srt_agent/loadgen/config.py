"""LoadConfig: the one description of a load-generator run, with its defaults, its command line
(to_argv / from_argv, one parser) and the one function that builds it from a job's sections.

The defaults live here only: `python -m srt_agent.loadgen`, `run_point` and the job file's
`benchmark` section (srt_agent/job_config.py reads LOAD_DEFAULTS) all take them from this
dataclass. The job file and the agent build their loads with `from_job`; the CLI parses its argv
back with `from_argv`, so `from_argv(c.to_argv()) == c` for every config.

Kept light on purpose (stdlib only, argparse imported when a parser is built): job_config.py
imports this module, and the CLI's start-up (`srtctl dry-run`) pays for what it imports.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from srt_agent.errors import BenchmarkError
from .sizing import auto_processes, usable_cores

if TYPE_CHECKING:  # typing only: the loadgen never imports the planner at run time
    import argparse

    from srt_agent.plan import Plan

HTTP_CLIENTS = ("lean", "aiohttp")


@dataclass
class LoadConfig:
    """One load-generator run (a benchmark point). num_prompts None means prompt_multiplier x concurrency."""

    url: str
    model: str
    isl: int
    osl: int
    concurrency: int
    num_prompts: int | None = None
    prompt_multiplier: float = 10.0
    warmup_multiplier: float = 2.0
    request_rate: float = math.inf
    random_range_ratio: float = 1.0
    seed: int = 0
    tokenizer: str | None = None
    processes: int | None = None  # None: from the cores and the expected event rate (sizing.py)
    expected_itl_ms: float | None = None  # expected gap between tokens: sizes the processes, feeds the checks
    http: str = "lean"  # "lean" | "aiohttp"
    use_uvloop: bool = True
    endpoint: str = "/v1/completions"
    request_timeout: float | None = 6 * 3600.0  # seconds per request; None: no limit
    total_gpus: int | None = None
    decode_gpus: int | None = None
    extra_body: dict = field(default_factory=dict)
    max_failed_fraction: float = 0.01  # the validity gate (validity.check_point)
    phase_timeout: float | None = None  # seconds for warmup and for the measured phase; None: no limit
    # a trace replay (trace_runner.py): the trace gives lengths and send times, so isl/osl are 0 and
    # concurrency is the cap on requests in flight (0: none); the thresholds give the goodput figure
    trace_file: str | None = None
    ttft_threshold_ms: float | None = None
    itl_threshold_ms: float | None = None

    def resolved_num_prompts(self) -> int:
        if self.num_prompts is not None:
            return self.num_prompts
        return max(1, math.ceil(self.prompt_multiplier * self.concurrency))

    def num_warmup(self) -> int:
        return max(0, math.ceil(self.warmup_multiplier * self.concurrency))

    def resolved_processes(self) -> int:

        if self.processes is not None:
            return max(1, min(self.processes, self.concurrency))
        return auto_processes(self.concurrency, self.osl, self.expected_itl_ms, usable_cores(), self.request_rate)

    def validate(self) -> None:
        if self.concurrency < (0 if self.trace_file else 1):
            raise BenchmarkError(f"concurrency must be >= 1 (got {self.concurrency})")
        if self.request_rate <= 0:
            raise BenchmarkError(f"request rate must be > 0 or inf (got {self.request_rate})")
        if self.http not in HTTP_CLIENTS:
            raise BenchmarkError(f"http client must be 'lean' or 'aiohttp' (got {self.http!r})")
        if self.expected_itl_ms is not None and not self.expected_itl_ms > 0:
            raise BenchmarkError(f"expected ITL must be > 0 ms (got {self.expected_itl_ms})")
        if self.http == "lean":
            try:
                import httptools  # noqa: F401
            except ImportError as e:
                raise BenchmarkError("the lean HTTP client needs 'httptools' (pip install httptools), "
                                     "or use http='aiohttp'") from e
        split_url(self.url, self.endpoint)

    # ---- the command line ----------------------------------------------------------------------

    def to_argv(self) -> list[str]:
        """The CLI flags that give this config: the required ones, then every field that differs
        from its default (so the defaults stay the loadgen's own)."""
        argv: list[str] = []
        for f in fields(self):
            flag = _FLAGS.get(f.name)
            value = getattr(self, f.name)
            if flag is None or (f.name not in _REQUIRED and value == LOAD_DEFAULTS.get(f.name)):
                continue
            if self.trace_file and f.name in ("isl", "osl", "concurrency") and not value:
                continue  # a trace replay: lengths from the trace, no cap
            if f.name == "use_uvloop":
                argv.append("--no-uvloop")
            elif f.name in ("request_timeout", "phase_timeout"):
                argv += [flag, "0" if value is None else _num(value)]
            elif f.name == "extra_body":
                argv += [flag, json.dumps(value, separators=(",", ":"))]
            elif isinstance(value, float):
                argv += [flag, _num(value)]
            else:
                argv += [flag, str(value)]
        return argv

    def command(self, out: str | None = None, *, python: str = sys.executable) -> list[str]:
        """The whole argv of `python -m srt_agent.loadgen`, writing its result to `out`."""
        return [python, "-m", "srt_agent.loadgen", *self.to_argv(), *(["--out", str(out)] if out else [])]


LOAD_DEFAULTS: dict = {f.name: f.default if f.default is not MISSING else f.default_factory()
                       for f in fields(LoadConfig) if f.default is not MISSING or f.default_factory is not MISSING}
_REQUIRED = ("url", "model", "isl", "osl", "concurrency")
_FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in fields(LoadConfig)}
_FLAGS.update(use_uvloop="--no-uvloop")


def _num(value: float) -> str:
    """A float as the CLI reads it back exactly: 2.0 -> '2', 0.05 -> '0.05', inf -> 'inf'."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _rate(text: str) -> float:
    import argparse

    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0 or inf")
    return value


def _positive(text: str) -> float:
    import argparse

    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def parser() -> argparse.ArgumentParser:
    """The CLI of `python -m srt_agent.loadgen`; every default is LoadConfig's."""
    import argparse  # here, not at the top: job_config.py imports this module at CLI start-up

    d = LOAD_DEFAULTS
    p = argparse.ArgumentParser(prog="python -m srt_agent.loadgen",
                                description="Run one benchmark point and write its JSON result atomically.")
    p.add_argument("--url", required=True, help="base URL of the OpenAI endpoint, e.g. http://127.0.0.1:8000")
    p.add_argument("--endpoint", default=d["endpoint"])
    p.add_argument("--model", required=True, help="model name sent in each request")
    p.add_argument("--isl", type=int, help="input tokens per request (required without --trace-file)")
    p.add_argument("--osl", type=int, help="output tokens per request (max_tokens, ignore_eos; required without "
                   "--trace-file)")
    p.add_argument("--concurrency", type=int, help="requests in flight at most (required without --trace-file; "
                   "with it 0 or missing: no cap)")
    p.add_argument("--num-prompts", type=int, help="measured requests (default: --prompt-multiplier x concurrency)")
    p.add_argument("--prompt-multiplier", type=float, default=d["prompt_multiplier"],
                   help="measured requests = this x concurrency, unless --num-prompts is given")
    p.add_argument("--warmup-multiplier", type=float, default=d["warmup_multiplier"],
                   help="warmup requests = this x concurrency")
    p.add_argument("--request-rate", type=_rate, default=d["request_rate"],
                   help="Poisson arrivals per second, or inf for a closed loop (default)")
    p.add_argument("--random-range-ratio", type=float, default=d["random_range_ratio"],
                   help="lengths uniform in [ratio x N, N]; 1.0 = fixed lengths")
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--tokenizer", help="directory with tokenizer.json: send text prompts instead of token ids")
    p.add_argument("--processes", type=int, help="worker processes (default: from the usable cores and the "
                   "expected event rate, concurrency x 1000 / --expected-itl-ms)")
    p.add_argument("--expected-itl-ms", type=_positive, help="expected gap between tokens: sizes the default "
                   "process count and the timing checks (default: assume 10 ms for sizing, no ITL check)")
    p.add_argument("--http", choices=HTTP_CLIENTS, default=d["http"])
    p.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio event loop")
    p.add_argument("--request-timeout", type=float, default=d["request_timeout"], help="seconds per request; 0: none")
    p.add_argument("--total-gpus", type=int, help="denominator of the *_per_gpu keys")
    p.add_argument("--decode-gpus", type=int, help="denominator of output_tok_s_per_decode_gpu (disaggregated)")
    p.add_argument("--extra-body", type=json.loads, default={}, help="JSON object merged into every request")
    p.add_argument("--max-failed-fraction", type=float, default=d["max_failed_fraction"])
    p.add_argument("--phase-timeout", type=float, default=0.0, help="seconds for warmup and for the measured "
                   "phase each; 0: no limit (default)")
    p.add_argument("--trace-file", help="replay this Mooncake-format JSONL trace (lengths and send times from it)")
    p.add_argument("--ttft-threshold-ms", type=_positive, help="trace replay: goodput counts requests under it")
    p.add_argument("--itl-threshold-ms", type=_positive, help="trace replay: ... and under this mean gap between tokens")
    p.add_argument("--out", help="write the result JSON here (atomically)")
    return p


def from_argv(argv: list[str] | None = None) -> tuple[LoadConfig, str | None]:
    """The config a command line gives, and its --out path."""
    p = parser()
    args = p.parse_args(argv)
    missing = [f"--{k}" for k in ("isl", "osl", "concurrency") if getattr(args, k) is None]
    if missing and not args.trace_file:
        p.error(f"the following arguments are required: {', '.join(missing)}")
    return from_args(args), args.out


def from_args(args: argparse.Namespace) -> LoadConfig:
    """The config of parsed arguments of parser() or of a parser built on it (the multi-node
    coordinator's and node's add their own options, which are not load settings and are ignored)."""
    given = vars(args)
    kwargs = {f.name: given[f.name] for f in fields(LoadConfig) if f.name in given}
    kwargs["use_uvloop"] = not given["no_uvloop"]
    for key in ("isl", "osl", "concurrency"):  # a trace replay: from the trace, no cap
        kwargs[key] = kwargs.get(key) or 0
    for key in ("request_timeout", "phase_timeout"):  # 0 on the command line: no limit
        kwargs[key] = kwargs[key] or None
    return LoadConfig(**kwargs)


# ---- from the job -------------------------------------------------------------------------------


def from_job(plan: Plan, *, benchmark=None, profiling=None, concurrency: int | None = None,
             num_prompts: int | None = None, tokenizer: str | None = None) -> LoadConfig:
    """The load the agent runs, built from the job's sections (exactly one of them):

    - `benchmark` (job.benchmark, type sa-bench): one sweep point at `concurrency`, with its
      multipliers, rate, seed, processes, expected ITL and validity threshold;
    - `profiling` (job.profiling): the profiling load, `num_prompts` requests at the section's
      isl/osl/concurrency, no warmup, and never rejected for failed requests (the profiling
      phase checks that tokens came back).

    The endpoint, served model name and GPU counts come from the plan; `tokenizer` is the model
    directory when it has a tokenizer.json (text prompts), else None (token-id prompts).
    """
    if (benchmark is None) == (profiling is None):
        raise TypeError("from_job takes exactly one of benchmark= and profiling=")
    common = dict(url=plan.endpoint.url, model=plan.served_model_name, tokenizer=tokenizer,
                  total_gpus=plan.total_gpus)
    if profiling is not None:
        return LoadConfig(**common, isl=profiling.isl, osl=profiling.osl, concurrency=profiling.concurrency,
                          num_prompts=num_prompts, warmup_multiplier=0, max_failed_fraction=1.0)
    b = benchmark
    if b.type == "trace-replay":  # one point: the whole trace at `concurrency` in flight at most (None: no cap)
        return LoadConfig(**common, isl=0, osl=0, concurrency=concurrency or 0, trace_file=b.trace_file,
                          ttft_threshold_ms=b.ttft_threshold_ms, itl_threshold_ms=b.itl_threshold_ms,
                          warmup_multiplier=b.warmup_multiplier, seed=b.seed, processes=b.processes,
                          expected_itl_ms=b.expected_itl_ms, max_failed_fraction=b.max_failed_fraction,
                          decode_gpus=plan.decode_gpus if plan.mode == "disaggregated" else None)
    if concurrency is None:
        raise TypeError("from_job(benchmark=...) needs the point's concurrency")
    return LoadConfig(
        **common, isl=b.isl, osl=b.osl, concurrency=concurrency, num_prompts=num_prompts,
        prompt_multiplier=b.prompt_multiplier, warmup_multiplier=b.warmup_multiplier,
        request_rate=math.inf if b.req_rate == "inf" else float(b.req_rate),
        random_range_ratio=b.random_range_ratio, seed=b.seed, processes=b.processes,
        expected_itl_ms=b.expected_itl_ms, max_failed_fraction=b.max_failed_fraction,
        decode_gpus=plan.decode_gpus if plan.mode == "disaggregated" else None)


def split_url(url: str, endpoint: str) -> tuple[str, int, str]:
    """(host, port, path) of the endpoint; only plain http."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise BenchmarkError(f"--url must look like http://HOST:PORT (got {url!r}); https is not supported")
    base = parts.path.rstrip("/")
    path = endpoint if endpoint.startswith("/") else "/" + endpoint
    if base and not path.startswith(base + "/"):
        path = base + path
    return parts.hostname, parts.port or 80, path
