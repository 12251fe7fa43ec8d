"""Prompts and answer extraction of gsm8k, MMLU and GPQA, following SGLang's eval scripts.

- gsm8k: SGLang's few-shot gsm8k (`sglang.test.few_shot_gsm8k`, `benchmark/gsm8k`): shots
  "Question: Q\\nAnswer: A\\n\\n", then "Question: Q\\nAnswer:" as a raw completion with stop
  strings "Question", "Assistant:", "<|separator|>"; the last number of the completion (commas
  removed) against the number after `####`.
- MMLU: SGLang's `benchmark/mmlu` (the original Hendrycks prompt): "The following are multiple
  choice questions (with answers) about <subject>.\\n\\n", the subject's dev shots, the question with
  "A. ..." lines and "Answer:"; the first letter of the completion.
- GPQA: SGLang's `simple_eval_gpqa` (OpenAI simple-evals): 0-shot chat with the multiple-choice
  template, choices permuted with random.Random(0), "Answer: X" extracted.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .datasets import LETTERS, Dataset, Record, normalize_number

GSM8K_STOP = ["Question", "Assistant:", "<|separator|>"]
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_LETTER = re.compile(r"(?i)Answer\s*:\s*\$?\(?([A-D])\b")

GPQA_TEMPLATE = """Answer the following multiple choice question. The last line of your response should be of \
the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step \
before answering.

{Question}

A) {A}
B) {B}
C) {C}
D) {D}"""

DEFAULTS = {  # num_shots, max_tokens
    "gsm8k": (5, 512),
    "mmlu": (5, 8),
    "gpqa": (0, 2048),
}
HARNESS = {
    "gsm8k": "sglang few_shot_gsm8k",
    "mmlu": "sglang benchmark/mmlu",
    "gpqa": "sglang simple_eval_gpqa (simple-evals)",
}


@dataclass(frozen=True)
class Item:
    """One request of an eval: `prompt` for /v1/completions, or `messages` for /v1/chat/completions."""

    id: str
    reference: str
    subject: str | None = None
    prompt: str | None = None
    messages: tuple[dict, ...] | None = None
    stop: tuple[str, ...] = ()


def _gsm8k_example(r: Record, with_answer: bool) -> str:
    return f"Question: {r.question}\nAnswer:" + (f" {r.solution}" if with_answer else "")


def gsm8k_items(ds: Dataset, num_examples: int | None) -> list[Item]:
    shots = "".join(_gsm8k_example(r, True) + "\n\n" for r in ds.shots.get("", []))
    records = ds.records[:num_examples] if num_examples else ds.records
    return [Item(r.id, r.reference, prompt=shots + _gsm8k_example(r, False), stop=tuple(GSM8K_STOP))
            for r in records]


def _mmlu_example(r: Record, with_answer: bool) -> str:
    text = r.question + "".join(f"\n{LETTERS[j]}. {c}" for j, c in enumerate(r.choices)) + "\nAnswer:"
    return text + (f" {r.reference}\n\n" if with_answer else "")


def mmlu_items(ds: Dataset, num_examples: int | None) -> list[Item]:
    records = ds.records
    if num_examples and num_examples < len(records):
        records = random.Random(0).sample(records, num_examples)
    out = []
    for r in records:
        subject = r.subject or ""
        head = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        shots = "".join(_mmlu_example(s, True) for s in ds.shots.get(subject, []))
        out.append(Item(r.id, r.reference, subject=subject, prompt=head + shots + _mmlu_example(r, False)))
    return out


def gpqa_items(ds: Dataset, num_examples: int | None) -> list[Item]:
    rng = random.Random(0)
    records = ds.records
    if num_examples and num_examples < len(records):
        records = rng.sample(records, num_examples)
    out = []
    for r in records:
        perm = rng.sample(range(4), 4)
        choices = [r.choices[i] for i in perm]
        letter = LETTERS[choices.index(r.choices[0])]
        text = GPQA_TEMPLATE.format(Question=r.question, A=choices[0], B=choices[1], C=choices[2], D=choices[3])
        out.append(Item(r.id, letter, messages=({"role": "user", "content": text},)))
    return out


def build_items(ds: Dataset, num_examples: int | None) -> list[Item]:
    return {"gsm8k": gsm8k_items, "mmlu": mmlu_items, "gpqa": gpqa_items}[ds.task](ds, num_examples)


def extract(task: str, text: str) -> str | None:
    """The answer in a completion, or None when none can be extracted (counted as invalid)."""
    if task == "gsm8k":
        numbers = _NUMBER.findall(text)
        return normalize_number(numbers[-1]) if numbers else None
    if task == "mmlu":
        s = text.strip()
        if s and s[0].upper() in LETTERS and (len(s) == 1 or not s[1].isalpha()):
            return s[0].upper()
    m = _ANSWER_LETTER.findall(text)
    return m[-1].upper() if m else None
