"""Server metrics of one benchmark point: scrape every worker, frontend and router while it runs.

Every `benchmark.metrics_interval_s` seconds (ticks on a fixed schedule) all targets' Prometheus
pages are fetched at once and reduced to a few columns (COLUMNS: SGLang's `sglang:*` names, the
Dynamo frontend's `dynamo_frontend_*`, a Dynamo worker's system metrics `dynamo_component_*`
(its `DYN_SYSTEM_PORT` page, which also passes the engine's `sglang:*` through), the
sglang-router's `smg_*`). Latency histograms (HISTOGRAMS: the frontend's TTFT, ITL and request
duration, the engine's TTFT and ITL) become `<name>_sum` / `<name>_count` columns, and their
buckets are kept in memory for the window's quantiles. After the point, the samples inside its
measured window (warmup excluded) go to one gzip'd CSV file per point,
`results/metrics_isl<I>_osl<O>_c<C>.csv.gz`, and are summarised per role (metrics_summary.py)
into the point's result JSON under `server_metrics`.

A scrape that fails (refused, timeout, not Prometheus text) is a row with ok=0 and the error,
never an exception. Memory and file size are bounded: past MAX_TICKS ticks in one point every
other tick is dropped and the interval doubles; at most HIST_KEEP bucket snapshots per target
are kept (every other one is dropped, the newest always stays).
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from ..metrics_file import write_metrics_file
from ..plan import Plan

# column: (sample name, required labels or None ("!v": anything but v), how several series of one target combine)
COLUMNS: dict[str, tuple[str, dict[str, str] | None, str]] = {
    "running": ("sglang:num_running_reqs", None, "sum"),
    "queued": ("sglang:num_queue_reqs", None, "sum"),
    "used_tokens": ("sglang:num_used_tokens", None, "sum"),
    "token_usage": ("sglang:token_usage", None, "mean"),
    "cache_hit_rate": ("sglang:cache_hit_rate", None, "mean"),
    "gen_throughput": ("sglang:gen_throughput", None, "sum"),
    "requests_total": ("sglang:num_requests_total", None, "sum"),
    "prompt_tokens_total": ("sglang:prompt_tokens_total", None, "sum"),
    "generation_tokens_total": ("sglang:generation_tokens_total", None, "sum"),
    "prefill_compute_tokens_total": ("sglang:realtime_tokens_total", {"mode": "prefill_compute"}, "sum"),
    "prefill_cache_tokens_total": ("sglang:realtime_tokens_total", {"mode": "prefill_cache"}, "sum"),
    "decode_tokens_total": ("sglang:realtime_tokens_total", {"mode": "decode"}, "sum"),
    "prefill_inflight_queue": ("sglang:num_prefill_inflight_queue_reqs", None, "sum"),
    "decode_prealloc_queue": ("sglang:num_decode_prealloc_queue_reqs", None, "sum"),
    "decode_transfer_queue": ("sglang:num_decode_transfer_queue_reqs", None, "sum"),
    # a Dynamo worker's system page (DYN_SYSTEM_PORT): its `generate` endpoint as the runtime sees it
    "worker_inflight": ("dynamo_component_inflight_requests", {"dynamo_endpoint": "generate"}, "sum"),
    "worker_requests_total": ("dynamo_component_requests_total", {"dynamo_endpoint": "generate"}, "sum"),
    "worker_response_bytes_total": ("dynamo_component_response_bytes_total", {"dynamo_endpoint": "generate"}, "sum"),
    # the Dynamo frontend (its HTTP port's /metrics)
    "frontend_active": ("dynamo_frontend_active_requests", None, "sum"),  # HTTP entry to response complete
    "frontend_inflight": ("dynamo_frontend_inflight_requests", None, "sum"),
    "frontend_queued": ("dynamo_frontend_queued_requests", None, "sum"),  # no first token yet
    "frontend_stage_requests": ("dynamo_frontend_stage_requests", None, "sum"),  # preprocess+route+dispatch
    "frontend_disconnected_clients": ("dynamo_frontend_disconnected_clients", None, "sum"),
    "frontend_requests_started_total": ("dynamo_frontend_requests_started_total", None, "sum"),
    "frontend_requests_total": ("dynamo_frontend_requests_total", None, "sum"),  # finished, any status
    "frontend_failed_requests_total": ("dynamo_frontend_requests_total", {"status": "!success"}, "sum"),
    "frontend_input_tokens_total": ("dynamo_frontend_input_sequence_tokens_sum", None, "sum"),
    "frontend_output_tokens_total": ("dynamo_frontend_output_tokens_total", None, "sum"),
    "router_requests_total": ("smg_router_requests_total", None, "sum"),
    "router_active": ("smg_worker_requests_active", None, "sum"),
}
# histogram column prefix: metric family (seconds). Columns <prefix>_sum and <prefix>_count (cumulative).
HISTOGRAMS: dict[str, str] = {
    "frontend_ttft": "dynamo_frontend_time_to_first_token_seconds",
    "frontend_itl": "dynamo_frontend_inter_token_latency_seconds",
    "frontend_request_duration": "dynamo_frontend_request_duration_seconds",
    "ttft": "sglang:time_to_first_token_seconds",
    "itl": "sglang:inter_token_latency_seconds",
}
for _col, _fam in HISTOGRAMS.items():
    COLUMNS[f"{_col}_sum"] = (f"{_fam}_sum", None, "sum")
    COLUMNS[f"{_col}_count"] = (f"{_fam}_count", None, "sum")
HIST_COLUMNS = frozenset(f"{c}_{k}" for c in HISTOGRAMS for k in ("sum", "count"))
_BY_SAMPLE: dict[str, list[str]] = {}
for _col, (_name, _labels, _agg) in COLUMNS.items():
    _BY_SAMPLE.setdefault(_name, []).append(_col)
_BUCKETS = {f"{fam}_bucket": col for col, fam in HISTOGRAMS.items()}
_WANTED = frozenset(_BY_SAMPLE) | frozenset(_BUCKETS)
HIST_KEEP = 128  # bucket snapshots per target per point
MAX_TICKS = 4096  # per point: a 1-hour point at 1 s stays at 1 s; longer points thin out


@dataclass(frozen=True)
class Target:
    name: str
    role: str  # worker role (prefill / decode / agg), "frontend" or "router"
    url: str


def metric_targets(plan: Plan) -> list[Target]:
    """Every Prometheus page of the deployment: worker leaders, frontends, the router."""
    out = []
    for p in plan.processes:
        if p.kind == "worker" and p.node_rank == 0 and p.port is not None:
            out.append(Target(p.name, p.role or "worker", f"http://{p.address}:{p.port}/metrics"))
        elif p.kind == "frontend" and p.port is not None:
            out.append(Target(p.name, "frontend", f"http://{p.address}:{p.port}/metrics"))
        elif p.kind == "router" and "--prometheus-port" in p.command:
            port = p.command[p.command.index("--prometheus-port") + 1]
            out.append(Target(p.name, "router", f"http://{p.address}:{port}/metrics"))
    return out


def parse_page(text: str) -> dict[str, float]:
    """The COLUMNS values of one Prometheus text page (prometheus_client's parser)."""
    return parse_page_full(text)[0]


def _labels_match(want: dict[str, str] | None, labels: dict[str, str]) -> bool:
    if want is None:
        return True
    for k, v in want.items():
        got = labels.get(k)
        if (got == v[1:]) if v.startswith("!") else (got != v):
            return False
    return True


def _wanted_lines(text: str) -> str:
    """Only the sample lines of the metrics we read (a Dynamo frontend's page is ~80 KB of mostly
    other histograms; parsing all of it costs ~25 ms). Without their TYPE lines the parser keeps
    each sample's own name (`x_total`, `x_bucket`), which is what COLUMNS and HISTOGRAMS name."""
    keep = []
    typed = False
    for line in text.splitlines():
        if not line or line[0] == "#":
            typed = typed or line.startswith(("# TYPE ", "# HELP "))
            continue
        end = len(line)
        for sep in ("{", " "):
            i = line.find(sep, 0, end)
            if i != -1:
                end = i
        if line[:end] in _WANTED:
            keep.append(line)
    if not keep and not typed and text.strip():
        raise ValueError(f"not Prometheus text: {text.strip()[:60]!r}")
    return "\n".join(keep) + "\n"


def parse_page_full(text: str) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """COLUMNS values and, per HISTOGRAMS column, the cumulative bucket counts {le: count} (all
    series of the family summed: several models or ranks on one page)."""
    from prometheus_client.parser import text_string_to_metric_families

    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    hists: dict[str, dict[float, float]] = {}
    for fam in text_string_to_metric_families(_wanted_lines(text)):
        for s in fam.samples:
            hcol = _BUCKETS.get(s.name)
            if hcol is not None and "le" in s.labels:
                le = float(s.labels["le"])
                h = hists.setdefault(hcol, {})
                h[le] = h.get(le, 0.0) + float(s.value)
                continue
            for col in _BY_SAMPLE.get(s.name, ()):
                if not _labels_match(COLUMNS[col][1], s.labels):
                    continue
                sums[col] = sums.get(col, 0.0) + float(s.value)
                counts[col] = counts.get(col, 0) + 1
    values = {c: (v / counts[c] if COLUMNS[c][2] == "mean" else v) for c, v in sums.items()}
    return values, hists


class Row(Mapping):
    """One scrape's column values, read-only and small: the column names are one shared index per
    set of names, the values an array of doubles (with its Sample ~0.36 KB a scrape in memory, a
    dict of the same values ~1.9 KB)."""

    __slots__ = ("_index", "_vals")
    _indexes: dict[tuple[str, ...], dict[str, int]] = {}

    def __init__(self, values: dict[str, float]) -> None:
        names = tuple(values)
        index = Row._indexes.get(names)
        if index is None:
            index = Row._indexes.setdefault(names, {n: i for i, n in enumerate(names)})
        self._index = index
        self._vals = array("d", values.values())

    def __getitem__(self, name: str) -> float:
        return self._vals[self._index[name]]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self):
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._vals)

    def __repr__(self) -> str:
        return f"Row({dict(self)!r})"


@dataclass(slots=True)
class Sample:
    t: float  # unix time of the tick
    target: Target
    values: Mapping[str, float] | None  # None: the scrape failed
    error: str | None = None
    hist: dict[str, dict[float, float]] | None = None  # bucket snapshot (kept for HIST_KEEP samples a target)


@dataclass
class Scraper:
    targets: list[Target]
    interval_s: float
    timeout_s: float = 5.0
    samples: list[Sample] = field(default_factory=list)
    ticks: int = 0
    _with_hist: dict[str, list[Sample]] = field(default_factory=dict)

    async def _one(self, client: httpx.AsyncClient, target: Target, t: float) -> None:
        try:
            r = await client.get(target.url)
            if r.status_code != 200:
                raise ValueError(f"HTTP {r.status_code}")
            values, hists = parse_page_full(r.text)
            sample = Sample(t, target, Row(values), hist=hists or None)
            self.samples.append(sample)
            if hists:
                self._keep_hist(target.name, sample)
        except Exception as exc:  # any failure is data, never fatal
            self.samples.append(Sample(t, target, None, f"{type(exc).__name__}: {exc}"[:200]))

    async def run(self) -> None:
        """Scrape until cancelled."""
        async with httpx.AsyncClient(timeout=min(self.timeout_s, max(self.interval_s, 0.5)),
                                     trust_env=False) as client:
            next_tick = time.monotonic()
            while True:
                t = time.time()
                async with anyio.create_task_group() as tg:
                    for target in self.targets:
                        tg.start_soon(self._one, client, target, t)
                self.ticks += 1
                if self.ticks > MAX_TICKS:
                    self._thin()
                next_tick += self.interval_s
                now = time.monotonic()
                while next_tick < now:  # a slow round: skip the ticks it overran
                    next_tick += self.interval_s
                await anyio.sleep(next_tick - now)

    def _keep_hist(self, name: str, sample: Sample) -> None:
        kept = self._with_hist.setdefault(name, [])
        kept.append(sample)
        if len(kept) > HIST_KEEP:
            for old in kept[1:-1:2]:
                old.hist = None
            self._with_hist[name] = [s for s in kept if s.hist is not None]

    def _thin(self) -> None:
        times = sorted({s.t for s in self.samples})
        keep = set(times[::2])
        self.samples = [s for s in self.samples if s.t in keep]
        for name, kept in self._with_hist.items():
            self._with_hist[name] = [s for s in kept if s.t in keep]
        self.ticks = len(keep)
        self.interval_s *= 2

    def window(self, start: float, end: float) -> list[Sample]:
        return [s for s in self.samples if start <= s.t <= end]


def write_samples(path: Path, samples: list[Sample], start: float) -> int:
    """One gzip'd CSV (metrics_file.py): t (s since the window start), target, role, ok, error,
    then the columns that any target reported. Returns the file's size in bytes."""
    cols = [c for c in COLUMNS if any(s.values and c in s.values for s in samples)]
    rows = ([f"{s.t - start:.3f}", s.target.name, s.target.role, 1 if s.values is not None else 0, s.error or "",
             *[(s.values or {}).get(c) for c in cols]] for s in samples)
    return write_metrics_file(path, cols, rows)
