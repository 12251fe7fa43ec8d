"""The prompts that replay a Mooncake-format trace (the file itself: trace_file.py).

Block `h` is always the same 512 tokens (its first BLOCK_TAG tokens spell h, the rest are a slice
of one seeded pool); a request's prompt is its blocks in order, cut to input_length; tokens past
its blocks (or all of them, without hash_ids) are its own (they start with its index). Tokens are
ids, or with the model's tokenizer words that are one token each and stay one token when strung
together (checked on the tokenizer), so lengths and shared blocks are exact either way.
"""

from __future__ import annotations

import json
import random
import re

from .prompts import ID_HIGH, ID_LOW, load_tokenizer
from .trace_file import TraceRequest

BLOCK_TOKENS = 512  # the Mooncake format's hash block size
BLOCK_TAG = 3  # leading tokens of a block that spell its hash id (unique for ids < 4096**3)
POOL_TOKENS = 4 * BLOCK_TOKENS
_WORD = re.compile(r" [A-Za-z]{3,}")


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
