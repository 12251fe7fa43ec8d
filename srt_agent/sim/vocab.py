"""Token vocabulary of the simulated engine: prompt counting, chat rendering, output text.

Two implementations with one interface:

- `BuiltinVocab`: a deterministic word vocabulary needing no files. Prompts are counted with
  the same rule as the word-level tokenizer `model_dir.write_model_dir` writes (special tokens,
  words, runs of punctuation), so counts agree whether or not a model dir is used.
- `TokenizerVocab`: a local HF-style model directory with tokenizer.json, read with the
  `tokenizers` library (imported only when such a directory is given).

Output tokens are drawn from `candidates`: token ids whose text is plain printable text (no
special tokens, no partial UTF-8), words only when the vocabulary has at least 1000 of them. Each candidate also carries its text pre-escaped for JSON so
streaming a token costs a string concatenation, not a json.dumps.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("srt_agent.sim")

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")
UNK, BOS, EOS = "<unk>", "<s>", "</s>"
PUNCTUATION = tuple(".,!?;:'\"()-/")
# ChatML-style template; used by write_model_dir and by BuiltinVocab.render_chat.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Same split as tokenizers' Whitespace pre-tokenizer, with special tokens kept whole.
_TOKEN_RE = re.compile(r"<\|[^|\s]{1,32}\|>|</?s>|<unk>|\w+|[^\w\s]+")
_CONSONANTS = "bdfghklmnprstvz"
_VOWELS = "aeiou"
MAX_CANDIDATES = 16384


def builtin_words(count: int) -> list[str]:
    """`count` distinct lowercase pseudo-words, always the same ones in the same order."""
    syllables = [c + v for c in _CONSONANTS for v in _VOWELS]
    words: list[str] = []
    length = 1
    while len(words) < count:
        _extend_words(words, syllables, length, count)
        length += 1
    return words


def _extend_words(words: list[str], syllables: list[str], length: int, count: int) -> None:
    base = len(syllables)
    for n in range(base**length):
        if len(words) >= count:
            return
        parts = []
        for _ in range(length):
            n, r = divmod(n, base)
            parts.append(syllables[r])
        words.append("".join(reversed(parts)))


def builtin_vocab_tokens(vocab_size: int) -> list[str]:
    """Token strings of the built-in vocabulary by id: specials, punctuation, digits, words."""
    head = list(SPECIAL_TOKENS) + list(PUNCTUATION) + [str(d) for d in range(10)]
    if vocab_size < len(head) + 16:
        raise ValueError(f"vocab_size must be at least {len(head) + 16}")
    return head + builtin_words(vocab_size - len(head))


def message_text(content: object) -> str:
    """The text of an OpenAI chat message `content` (a string or a list of parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "".join(texts)
    return str(content)


def _builtin_chat(messages: Sequence[dict]) -> str:
    out = []
    for m in messages:
        out.append(f"<|im_start|>{m.get('role', 'user')}\n{message_text(m.get('content'))}<|im_end|>\n")
    out.append("<|im_start|>assistant\n")
    return "".join(out)


class Vocab:
    """Interface shared by both vocabularies."""

    source = "builtin"
    eos_id: int = 2
    vocab_size: int = 0
    candidate_ids: list[int]
    candidate_text: list[str]
    candidate_json: list[str]

    def count_text(self, text: str) -> int:
        raise NotImplementedError

    def render_chat(self, messages: Sequence[dict]) -> str:
        return _builtin_chat(messages)

    def _set_candidates(self, ids: list[int], texts: list[str]) -> None:
        if not ids:
            raise ValueError("vocabulary has no plain-text tokens to generate from")
        self.candidate_ids = ids
        self.candidate_text = texts
        self.candidate_json = [json.dumps(t, ensure_ascii=False)[1:-1] for t in texts]


class BuiltinVocab(Vocab):
    source = "builtin"

    def __init__(self, vocab_size: int = 32000) -> None:
        tokens = builtin_vocab_tokens(vocab_size)
        self.vocab_size = len(tokens)
        self.eos_id = tokens.index(EOS)
        first_word = len(SPECIAL_TOKENS) + len(PUNCTUATION) + 10
        ids = list(range(first_word, min(len(tokens), first_word + MAX_CANDIDATES)))
        self._set_candidates(ids, [" " + tokens[i] for i in ids])

    def count_text(self, text: str) -> int:
        return len(_TOKEN_RE.findall(text))


class TokenizerVocab(Vocab):
    """A local model directory's tokenizer.json (and its tokenizer_config chat_template)."""

    source = "tokenizer"

    def __init__(self, model_dir: str | Path) -> None:
        from tokenizers import Tokenizer  # optional dependency, only for model dirs

        model_dir = Path(model_dir)
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.vocab_size = self.tokenizer.get_vocab_size(with_added_tokens=True)
        tok_config = _read_json(model_dir / "tokenizer_config.json")
        gen_config = _read_json(model_dir / "generation_config.json")
        self.eos_id = self._find_eos(tok_config, gen_config)
        self._template = self._compile_template(tok_config)
        self._bos = _token_str(tok_config.get("bos_token"))
        self._eos = _token_str(tok_config.get("eos_token"))
        ids, texts = self._plain_tokens()
        self._set_candidates(ids, texts)

    def _find_eos(self, tok_config: dict, gen_config: dict) -> int:
        eos = gen_config.get("eos_token_id")
        if isinstance(eos, list) and eos:
            eos = eos[0]
        if isinstance(eos, int):
            return eos
        name = _token_str(tok_config.get("eos_token")) or EOS
        found = self.tokenizer.token_to_id(name)
        return found if found is not None else -1

    def _special_ids(self) -> set[int]:
        try:
            return {i for i, tok in self.tokenizer.get_added_tokens_decoder().items() if tok.special}
        except AttributeError:  # tokenizers < 0.15
            return set()

    def _plain_tokens(self) -> tuple[list[int], list[str]]:
        """Ids whose text, appended after an ordinary token, is plain printable text."""
        special = self._special_ids() | {self.eos_id}
        decode = self.tokenizer.decode_batch
        anchor = next((i for i in range(min(self.vocab_size, 4096)) if i not in special
                       and decode([[i]])[0].isalpha()), None)
        if anchor is None:
            anchor_text, prefix = "", []
        else:
            anchor_text, prefix = decode([[anchor]])[0], [anchor]
        ids: list[int] = []
        texts: list[str] = []
        for start in range(0, self.vocab_size, 4096):
            batch = [i for i in range(start, min(start + 4096, self.vocab_size)) if i not in special]
            for i, full in zip(batch, decode([prefix + [i] for i in batch])):
                if not full.startswith(anchor_text):
                    continue
                text = full[len(anchor_text):]
                if 0 < len(text) <= 24 and text.strip() and text.isprintable() and "\ufffd" not in text:
                    ids.append(i)
                    texts.append(text)
            if sum(t.strip().isalpha() for t in texts) >= MAX_CANDIDATES:
                break
        # Prefer word tokens (output then reads like the built-in vocabulary's) when there are enough.
        words = [(i, t) for i, t in zip(ids, texts) if t.strip().isalpha()]
        if len(words) >= 1000:
            ids, texts = [i for i, _ in words], [t for _, t in words]
        return ids[:MAX_CANDIDATES], texts[:MAX_CANDIDATES]

    def _compile_template(self, tok_config: dict):
        source = tok_config.get("chat_template")
        if isinstance(source, list):  # [{"name": ..., "template": ...}]
            named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
            source = named.get("default") or next(iter(named.values()), None)
        if not isinstance(source, str):
            return None
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        try:
            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            env.globals["raise_exception"] = _raise_template_error
            return env.from_string(source)
        except TemplateError as exc:  # a template SGLang could not use either
            log.warning("chat_template of the model dir does not compile (%s); using ChatML", exc)
            return None

    def render_chat(self, messages: Sequence[dict]) -> str:
        if self._template is None:
            return _builtin_chat(messages)
        plain = [{**m, "content": message_text(m.get("content"))} for m in messages]
        try:
            return self._template.render(messages=plain, add_generation_prompt=True, tools=None,
                                         bos_token=self._bos or "", eos_token=self._eos or "")
        except _RENDER_ERRORS:
            return _builtin_chat(messages)

    def count_text(self, text: str) -> int:
        return len(self.tokenizer.encode(text).ids)


_RENDER_ERRORS = (ValueError, TypeError, LookupError, AttributeError, ArithmeticError)


def _raise_template_error(message: str) -> None:
    raise ValueError(message)


def _token_str(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_vocab(tokenizer_dir: str | None) -> Vocab:
    """TokenizerVocab for a local dir holding tokenizer.json, else the built-in vocabulary."""
    if tokenizer_dir and (Path(tokenizer_dir) / "tokenizer.json").is_file():
        try:
            return TokenizerVocab(tokenizer_dir)
        except ImportError:
            log.warning("`tokenizers` is not installed; using the built-in vocabulary")
    return BuiltinVocab()
