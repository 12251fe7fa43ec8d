"""A request trace in the Mooncake format, and the prompts that replay it.

The trace is a JSONL file, one request per line (the format of Mooncake's FAST'25 traces, which
aiperf reads as `mooncake_trace`):

    {"timestamp": 0, "input_length": 6755, "output_length": 500, "hash_ids": [0, 1, 2, 3, ...]}

    timestamp      when the request is sent, in ms from the start of the replay
    input_length   prompt tokens
    output_length  completion tokens (sent as max_tokens with ignore_eos, as sa-bench points are)
    hash_ids       optional: ids of the prompt's consecutive 512-token blocks; two requests that
                   share a block id share that block's tokens, so shared leading ids are a shared
                   prefix (what prefix caches and KV-aware routers see)

Block `h` is always the same 512 tokens (its first BLOCK_TAG tokens spell h, the rest are a slice
of one seeded pool); a request's prompt is its blocks in order, cut to input_length; tokens past
its blocks (or all of them, without hash_ids) are its own (they start with its index). Tokens are
ids, or with the model's tokenizer words that are one token each and stay one token when strung
together (checked on the tokenizer), so lengths and shared blocks are exact either way.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from srt_agent.errors import BenchmarkError, ConfigError
from .prompts import ID_HIGH, ID_LOW, load_tokenizer

BLOCK_TOKENS = 512  # the Mooncake format's hash block size
BLOCK_TAG = 3  # leading ids of a block that spell its hash id (unique for ids < 29000**3)
POOL_TOKENS = 4 * BLOCK_TOKENS
MAX_LINE_ERRORS = 5
_WORD = re.compile(r" [A-Za-z]{3,}")


@dataclass(frozen=True)
class TraceRequest:
    timestamp_ms: float
    input_length: int
    output_length: int
    hash_ids: tuple[int, ...] = ()


@dataclass
class Trace:
    path: str
    requests: list[TraceRequest] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max((r.timestamp_ms for r in self.requests), default=0.0) / 1000.0

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
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not math.isfinite(ts) or ts < 0:
        raise ValueError(f"{where}: 'timestamp' must be a number of ms >= 0 (got {ts!r})")
    if "input_text" in obj or "text_input" in obj:
        raise ValueError(f"{where}: literal prompt text is not replayed (give input_length, and hash_ids for "
                         "shared prefixes)")
    n_in = _int_field(obj, "input_length", 1, where)
    n_out = _int_field(obj, "output_length", 1, where)
    ids = obj.get("hash_ids", [])
    if not isinstance(ids, list) or any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in ids):
        raise ValueError(f"{where}: 'hash_ids' must be a list of integers >= 0")
    return TraceRequest(float(ts), n_in, n_out, tuple(ids))


def load_trace(path: str) -> Trace:
    """Read and check a trace file; every problem names the file and line (the first few at once)."""
    p = Path(path)
    if not p.is_file():
        raise BenchmarkError(f"trace file {path} does not exist (benchmark.trace_file must name a file "
                             "the head node can read)")
    trace, problems = Trace(str(p)), []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                trace.requests.append(parse_line(line, f"{path}:{n}"))
            except ValueError as e:
                problems.append(str(e))
                if len(problems) >= MAX_LINE_ERRORS:
                    break
    if problems:
        raise BenchmarkError("the trace file has bad lines:\n  " + "\n  ".join(problems))
    if not trace.requests:
        raise BenchmarkError(f"trace file {path} holds no requests")
    order = sorted(range(len(trace.requests)), key=lambda i: trace.requests[i].timestamp_ms)  # stable
    trace.requests = [trace.requests[i] for i in order]
    return trace


WORDS = 4096  # text prompts: the single-token words prompts are made of


def id_alphabet() -> list[bytes]:
    return [str(i).encode() for i in range(ID_LOW, ID_HIGH)]


def word_alphabet(tokenizer: str, seed: int = 0) -> list[bytes] | None:
    """Words that are one token each and stay so when strung together (each starts with a space,
    which the tokenizer splits at), as JSON string fragments; None when the tokenizer has too few
    (the prompts are then token ids)."""
    tok = load_tokenizer(tokenizer)
    ids = list(range(tok.get_vocab_size(with_added_tokens=False)))
    random.Random(seed).shuffle(ids)
    found: list[tuple[int, str]] = []
    for i in ids:
        text = tok.decode([i])
        word = text if text.startswith(" ") else " " + text
        if _WORD.fullmatch(word) and tok.encode(word, add_special_tokens=False).ids == [i]:
            found.append((i, word))
            if len(found) == WORDS:
                break
    if len(found) < 256:
        return None
    sample = found[:600]
    if tok.encode("".join(w for _, w in sample), add_special_tokens=False).ids != [i for i, _ in sample]:
        return None
    return [json.dumps(w)[1:-1].encode() for _, w in found]


class TraceWorkload:
    """The prompts of a trace, with the interface of prompts.Workload (kind, prompt_json,
    input_lens, output_lens, subset). Token ids, or with a tokenizer text of single-token words
    (the sglang router takes no token-id prompts); bodies are built when sent, from one pool of
    POOL_TOKENS tokens, so memory does not grow with the trace's distinct blocks."""

    def __init__(self, kind: str, alphabet: list[bytes], pool: list[bytes], requests: dict[int, TraceRequest]) -> None:
        self.kind, self.alphabet, self.pool, self.requests = kind, alphabet, pool, requests
        self.sep = b"," if kind == "ids" else b""
        self.base = len(alphabet)
        self.input_lens = {g: r.input_length for g, r in requests.items()}
        self.output_lens = {g: r.output_length for g, r in requests.items()}

    @classmethod
    def build(cls, requests: dict[int, TraceRequest], seed: int = 0, tokenizer: str | None = None) -> TraceWorkload:
        words = word_alphabet(tokenizer, seed) if tokenizer else None
        kind, alphabet = ("text", words) if words else ("ids", id_alphabet())
        rng = random.Random(seed)
        return cls(kind, alphabet, [rng.choice(alphabet) for _ in range(POOL_TOKENS)], requests)

    def _tag(self, value: int) -> list[bytes]:
        return [self.alphabet[(value // self.base**k) % self.base] for k in range(BLOCK_TAG)]

    def _slice(self, head: int, count: int, salt: int) -> list[bytes]:
        """`count` tokens: the tag of `head`, then pool tokens from an offset that `salt` picks."""
        rest = count - BLOCK_TAG
        if rest <= 0:
            return self._tag(head)[:count]
        start = (salt * 7919) % (POOL_TOKENS - BLOCK_TOKENS)
        return self._tag(head) + self.pool[start:start + rest]

    def prompt_tokens(self, g: int) -> list[bytes]:
        r = self.requests[g]
        parts: list[bytes] = []
        left = r.input_length
        for h in r.hash_ids:
            if left <= 0:
                break
            n = min(BLOCK_TOKENS, left)
            parts += self._slice(h, n, h)
            left -= n
        own = self.base**BLOCK_TAG - 1 - g % self.base**BLOCK_TAG  # this request's own tokens: never shared
        while left > 0:
            n = min(BLOCK_TOKENS, left)
            parts += self._slice(own, n, g + len(parts))
            left -= n
        return parts

    def prompt_ids(self, g: int) -> list[int]:
        """The prompt as token ids (ids prompts) or words (text prompts)."""
        return [json.loads(t) if self.kind == "ids" else t.decode() for t in self.prompt_tokens(g)]

    def prompt_json(self, g: int) -> bytes:
        inner = self.sep.join(self.prompt_tokens(g))
        return b"[" + inner + b"]" if self.kind == "ids" else b'"' + inner + b'"'

    def subset(self, indices: list[int]) -> TraceWorkload:
        return TraceWorkload(self.kind, self.alphabet, self.pool, {g: self.requests[g] for g in indices})


def dry_run_errors(benchmark, doc) -> list[ConfigError]:
    """`srtctl dry-run` / `apply`: a trace this machine can read is checked in full (bad lines named
    file:line); one it cannot is left to the agent's preflight on the head node."""
    if benchmark.type != "trace-replay" or not os.path.isfile(benchmark.trace_file):
        return []
    try:
        load_trace(benchmark.trace_file)
    except BenchmarkError as exc:
        return [ConfigError(str(exc), file=doc.path, line=doc.line_of(("benchmark", "trace_file")),
                            key="benchmark.trace_file", value=benchmark.trace_file,
                            hint="one JSON object a line: timestamp (ms), input_length, output_length, hash_ids")]
    return []
