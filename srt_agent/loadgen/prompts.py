"""Prompts of a given token length, prepared before the timed part.

Every request gets a unique prefix of up to PREFIX_TOKENS tokens (its global index written in
base len(token range), least significant digit first, so consecutive requests differ at token 0)
followed by a slice of one of at most POOL_SIZE random bodies. No two requests share a prefix, so
prefix / radix caches cannot hit, and memory stays bounded at 40,960 x 8192-token prompts.

Without a tokenizer the prompt is a list of token ids (seeded random ids in [ID_LOW, ID_HIGH),
valid in any vocabulary of >= 30k entries). With a tokenizer (a directory holding tokenizer.json,
or the file) the prompt is text made by decoding random ids and trimming at token boundaries
after re-encoding; prefix and body are joined by a space. Its length is ISL up to a token or two
where the tokenizer merges across that boundary; the server's usage.prompt_tokens gives the
exact count in the result.
"""

from __future__ import annotations

import json
import random
from array import array
from dataclasses import dataclass
from pathlib import Path

from srt_agent.errors import BenchmarkError

PREFIX_TOKENS = 4
POOL_SIZE = 256
ID_LOW, ID_HIGH = 1000, 30000


@dataclass
class Body:
    """One random prompt body as a JSON fragment, plus the byte offset after each token."""

    fragment: bytes
    offsets: array  # offsets[k] = length of the fragment holding the first k+1 tokens


@dataclass
class Workload:
    """Everything a worker needs to build the request body of global request index g."""

    kind: str  # "ids" | "text"
    bodies: list[Body]
    prefixes: dict[int, bytes]  # g -> JSON fragment of the unique prefix
    input_lens: dict[int, int]
    output_lens: dict[int, int]

    def prompt_json(self, g: int) -> bytes:
        """The JSON value of the prompt of request g (a list of ids, or a string)."""
        length = self.input_lens[g]
        prefix = self.prefixes[g]
        rest = length - PREFIX_TOKENS
        if rest > 0:
            body = self.bodies[g % len(self.bodies)]
            cut = body.offsets[min(rest, len(body.offsets)) - 1]
            sep = b"," if self.kind == "ids" else b" "
            inner = prefix + sep + body.fragment[:cut]
        else:
            inner = prefix
        return b"[" + inner + b"]" if self.kind == "ids" else b'"' + inner + b'"'

    def subset(self, indices: list[int]) -> Workload:
        return Workload(self.kind, self.bodies, {g: self.prefixes[g] for g in indices},
                        {g: self.input_lens[g] for g in indices}, {g: self.output_lens[g] for g in indices})


def load_tokenizer(path: str):
    try:
        from tokenizers import Tokenizer
    except ImportError as e:  # optional dependency
        raise BenchmarkError("--tokenizer needs the 'tokenizers' package (pip install tokenizers)") from e
    p = Path(path)
    file = p / "tokenizer.json" if p.is_dir() else p
    if not file.is_file():
        raise BenchmarkError(f"tokenizer: {file} does not exist (give a directory holding tokenizer.json)")
    return Tokenizer.from_file(str(file))


def sample_lengths(n: int, base: int, ratio: float, rng: random.Random) -> list[int]:
    """Lengths uniform in [max(1, floor(base * ratio)), base]; ratio 1.0 means all equal base."""
    if not 0.0 <= ratio <= 1.0:
        raise BenchmarkError(f"random range ratio must be within [0, 1], got {ratio}")
    low = max(1, int(base * ratio))
    if low >= base:
        return [base] * n
    return [rng.randint(low, base) for _ in range(n)]


def _ids_body(rng: random.Random, n: int) -> Body:
    strs = [str(rng.randrange(ID_LOW, ID_HIGH)) for _ in range(n)]
    offsets = array("I")
    pos = -1
    for s in strs:
        pos += len(s) + 1
        offsets.append(pos)
    return Body(",".join(strs).encode(), offsets)


def _escaped(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)[1:-1]


def _text_body(tok, rng: random.Random, n: int, allowed: list[int], need_offsets: bool) -> Body:
    ids = [rng.choice(allowed) for _ in range(int(n * 1.3) + 8)]
    while True:
        text = tok.decode(ids)
        enc = tok.encode(text, add_special_tokens=False)
        if len(enc.ids) >= n:
            break
        ids += [rng.choice(allowed) for _ in range(n)]
    ends = [end for _, end in enc.offsets[:n]]
    text = text[: ends[-1]]
    offsets = array("I")
    if need_offsets:
        pos, prev = 0, 0
        for end in ends:
            pos += len(_escaped(text[prev:end]))
            offsets.append(pos)
            prev = max(prev, end)
    fragment = _escaped(text).encode()
    if not need_offsets:
        offsets = array("I", [0] * (n - 1) + [len(fragment)])
    return Body(fragment, offsets)


def build_workload(
    indices: list[int],
    isl: int,
    osl: int,
    *,
    seed: int = 0,
    random_range_ratio: float = 1.0,
    tokenizer: str | None = None,
) -> Workload:
    """Prompts for the given global request indices (warmup and measured indices differ)."""
    if isl < 1 or osl < 1:
        raise BenchmarkError(f"isl and osl must be >= 1 (got isl={isl}, osl={osl})")
    rng = random.Random(seed)
    in_lens = sample_lengths(len(indices), isl, random_range_ratio, rng)
    out_lens = sample_lengths(len(indices), osl, random_range_ratio, rng)
    variable = random_range_ratio < 1.0
    body_len = max(isl - PREFIX_TOKENS, 1)
    pool = min(POOL_SIZE, max(1, len(indices)))
    base = ID_HIGH - ID_LOW
    if tokenizer is None:
        bodies = [_ids_body(rng, body_len) for _ in range(pool)]
        prefixes = {}
        for g in indices:
            digits = [ID_LOW + (g // base**k) % base for k in range(PREFIX_TOKENS)]
            prefixes[g] = ",".join(map(str, digits[: min(PREFIX_TOKENS, isl)])).encode()
        kind = "ids"
    else:
        tok = load_tokenizer(tokenizer)
        special = set(tok.get_added_tokens_decoder().keys())
        unk = getattr(tok.model, "unk_token", None)
        if unk is not None and tok.token_to_id(unk) is not None:
            special.add(tok.token_to_id(unk))
        allowed = [i for i in range(tok.get_vocab_size(with_added_tokens=False)) if i not in special]
        base = len(allowed)
        bodies = [_text_body(tok, rng, body_len, allowed, variable) for _ in range(pool)]
        prefixes = {}
        for g in indices:
            digits = [allowed[(g // base**k) % base] for k in range(PREFIX_TOKENS)]
            prefixes[g] = _escaped(tok.decode(digits[: min(PREFIX_TOKENS, isl)])).encode()
        kind = "text"
    return Workload(kind, bodies, prefixes, dict(zip(indices, in_lens)), dict(zip(indices, out_lens)))
