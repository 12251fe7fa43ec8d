"""A local HF-style model directory without weights, built offline with `tokenizers` only.

`write_model_dir(path)` writes what tokenizer-loading servers need (Dynamo's mocker and
frontend, sglang-router, the simulated engine): tokenizer.json (word-level, padded to
`vocab_size` tokens so that any token id a simulator emits decodes to a word), tokenizer_config.json
with a ChatML `chat_template` (also as chat_template.jinja, the newer HF layout), config.json and
generation_config.json. No network, no weights.

The vocabulary is the simulated engine's built-in one (`vocab.builtin_vocab_tokens`), so a
prompt counts the same number of tokens with or without the directory. No BOS is added.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from srt_agent.atomic import write_text_atomic
from srt_agent.sim.vocab import BOS, CHAT_TEMPLATE, EOS, SPECIAL_TOKENS, UNK, builtin_vocab_tokens

DEFAULT_VOCAB_SIZE = 32000
CONTEXT_LENGTH = 131072


def write_model_dir(path: str | os.PathLike, vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """Create (or overwrite) a model directory at `path`; returns the path."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokens = builtin_vocab_tokens(vocab_size)
    ids = {t: i for i, t in enumerate(tokens)}
    tokenizer = Tokenizer(WordLevel(vocab=ids, unk_token=UNK))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    _write_atomic(out / "tokenizer.json", tokenizer.to_str(pretty=False))
    _write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": UNK,
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": CONTEXT_LENGTH,
        "chat_template": CHAT_TEMPLATE,
    })
    _write_atomic(out / "chat_template.jinja", CHAT_TEMPLATE)
    _write_json(out / "config.json", {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": len(tokens),
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": CONTEXT_LENGTH,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    })
    _write_json(out / "generation_config.json", {
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
    })
    return out


def shared_model_dir(vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """A model dir under the temp dir, written once and shared by every process on the host.

    Used when a worker's --model-path is not a local directory (e.g. a hub name), so that
    /server_info can still report a local tokenizer and nothing downloads one.
    """
    root = Path(tempfile.gettempdir()) / f"srt-sim-model-v2-{vocab_size}"
    if (root / "generation_config.json").is_file():
        return root
    staging = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    write_model_dir(staging, vocab_size)
    try:
        os.rename(staging, root)
    except OSError:  # another process won the race; its directory is identical
        for child in staging.iterdir():
            child.unlink()
        staging.rmdir()
    return root


def _write_json(path: Path, data: dict) -> None:
    _write_atomic(path, json.dumps(data, indent=2) + "\n")


def _write_atomic(path: Path, text: str) -> None:
    write_text_atomic(path, text)
