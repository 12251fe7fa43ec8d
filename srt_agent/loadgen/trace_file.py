"""A request trace in the Mooncake format: the file, read and checked (no prompts here: this
module is also what `srtctl dry-run` imports to check a trace it can see, so it stays light).

One JSON object a line (the format of Mooncake's FAST'25 traces, aiperf's `mooncake_trace`):

    {"timestamp": 0, "input_length": 6755, "output_length": 500, "hash_ids": [0, 1, 2, 3, ...]}

    timestamp      when the request is sent, in ms from the start of the replay; a trace without
                   timestamps (none on any line) is sent as fast as a concurrency cap allows, in
                   file order, as aiperf sends one
    input_length   prompt tokens
    output_length  completion tokens (sent as max_tokens with ignore_eos, as sa-bench points are)
    hash_ids       optional: ids of the prompt's consecutive 512-token blocks; two requests that
                   share a block id share that block's tokens, so shared leading ids are a shared
                   prefix (what prefix caches and KV-aware routers see)
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from srt_agent.errors import BenchmarkError, ConfigError

MAX_LINE_ERRORS = 5
FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")
NOT_REPLAYED = {  # fields aiperf's mooncake_trace reads that srt-loadgen has no replay of
    "text_input": "literal prompt text: give input_length, and hash_ids for shared prefixes",
    "input_text": "literal prompt text: give input_length, and hash_ids for shared prefixes",
    "session_id": "multi-turn sessions: give every turn its own timestamp",
    "delay": "multi-turn sessions: give every turn its own timestamp",
}


@dataclass(frozen=True)
class TraceRequest:
    timestamp_ms: float | None  # None: an untimed trace (sent when a slot is free)
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = ()


class Trace:
    """The requests of one trace file, in timestamp order (a plain class: one dataclass less to
    build when `srtctl dry-run` imports this module)."""

    __slots__ = ("path", "requests")

    def __init__(self, path: str, requests: list[TraceRequest] | None = None) -> None:
        self.path = path
        self.requests = requests or []

    @property
    def timed(self) -> bool:
        return bool(self.requests) and self.requests[0].timestamp_ms is not None

    @property
    def duration_s(self) -> float:
        return max((r.timestamp_ms or 0.0 for r in self.requests), default=0.0) / 1000.0

    def mean_rate(self) -> float:
        """Requests per second over the trace's span (inf for a trace sent all at once)."""
        span = self.duration_s
        return len(self.requests) / span if span > 0 else math.inf


def _int_field(obj: dict, key: str, minimum: int, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: '{key}' must be an integer >= {minimum} (got {value!r})")
    return value


def parse_line(text: str, where: str) -> TraceRequest:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: not JSON ({e.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: a request must be a JSON object")
    ts = obj.get("timestamp")
    if ts is not None and (isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0):
        raise ValueError(f"{where}: 'timestamp' must be a number of ms >= 0 (got {ts!r})")
    for key in obj:
        if key in FIELDS:
            continue
        if key in NOT_REPLAYED:
            raise ValueError(f"{where}: '{key}' is not replayed ({NOT_REPLAYED[key]})")
        guess = difflib.get_close_matches(str(key), FIELDS, n=1)
        raise ValueError(f"{where}: unknown field '{key}'" + (f" (did you mean '{guess[0]}'?)" if guess else
                                                              f"; the fields are {', '.join(FIELDS)}"))
    n_in = _int_field(obj, "input_length", 1, where)
    n_out = _int_field(obj, "output_length", 1, where)
    ids = obj.get("hash_ids", [])
    if not isinstance(ids, list) or any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in ids):
        raise ValueError(f"{where}: 'hash_ids' must be a list of integers >= 0")
    return TraceRequest(None if ts is None else float(ts), n_in, n_out, tuple(ids))


def load_trace(path: str) -> Trace:
    """Read and check a trace file; every problem names the file and line (the first few at once)."""
    p = Path(path)
    if not p.is_file():
        raise BenchmarkError(f"trace file {path} does not exist (benchmark.trace_file must name a file "
                             "the head node can read)")
    trace, problems, first = Trace(str(p)), [], None
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                req = parse_line(line, f"{path}:{n}")
                if first is None:
                    first = (n, req.timestamp_ms is not None)
                elif (req.timestamp_ms is not None) != first[1]:
                    has, lacks = (first[0], n) if first[1] else (n, first[0])
                    raise ValueError(f"{path}:{n}: line {has} has a 'timestamp' and line {lacks} none: give every "
                                     "request one, or none (sent as fast as the concurrency cap allows)")
                trace.requests.append(req)
            except ValueError as e:
                problems.append(str(e))
                if len(problems) >= MAX_LINE_ERRORS:
                    break
    if problems:
        raise BenchmarkError("the trace file has bad lines:\n  " + "\n  ".join(problems))
    if not trace.requests:
        raise BenchmarkError(f"trace file {path} holds no requests")
    order = sorted(range(len(trace.requests)), key=lambda i: trace.requests[i].timestamp_ms or 0.0)  # stable
    trace.requests = [trace.requests[i] for i in order]
    return trace


def dry_run_errors(benchmark, doc) -> list[ConfigError]:
    """`srtctl dry-run` / `apply`: a trace this machine can read is checked in full (bad lines named
    file:line); one it cannot is left to the agent's preflight on the head node."""
    if benchmark.type != "trace-replay" or not os.path.isfile(benchmark.trace_file):
        return []
    hint = "one JSON object a line: timestamp (ms), input_length, output_length, hash_ids"
    try:
        problem = untimed_without_cap(load_trace(benchmark.trace_file), benchmark.concurrencies)
        hint = "add benchmark.concurrencies: [N]"
    except BenchmarkError as exc:
        problem = str(exc)
    if problem is None:
        return []
    return [ConfigError(problem, file=doc.path, line=doc.line_of(("benchmark", "trace_file")),
                        key="benchmark.trace_file", value=benchmark.trace_file, hint=hint)]


def untimed_without_cap(trace: Trace, concurrencies) -> str | None:
    if trace.timed or concurrencies:
        return None
    return (f"trace file {trace.path} has no timestamps, so its requests go out as fast as a cap allows: "
            "give benchmark.concurrencies")
