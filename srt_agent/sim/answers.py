"""`--sim-answers-dataset PATH --sim-answers-accuracy A`: the simulated engine answers eval questions.

It finds the last question of a prompt that belongs to the dataset (gsm8k JSONL, MMLU directory or
GPQA CSV, the same loaders as the evals) and answers it in the task's answer format: correctly for
the round(A x N) questions ranked first by a hash of their text (so the same questions on every
worker and every run), wrongly for the rest. Prompts without a known question get no answer.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..evals.datasets import LETTERS, Record, load_dataset, normalize_number


def detect_task(path: str) -> str:
    return "gsm8k" if path.endswith(".jsonl") else "gpqa" if path.endswith(".csv") else "mmlu"


def _rank(question: str) -> str:
    return hashlib.sha256(question.encode()).hexdigest()


@dataclass(frozen=True)
class _Entry:
    record: Record
    correct: bool


class Answers:
    def __init__(self, dataset_path: str, accuracy: float) -> None:
        self.task = detect_task(dataset_path)
        records = load_dataset(self.task, dataset_path, 0).records
        ranked = sorted({r.question: r for r in records}.values(), key=lambda r: _rank(r.question))
        n_correct = round(accuracy * len(ranked))
        self.entries = [_Entry(r, i < n_correct) for i, r in enumerate(ranked)]
        # longest first: of two questions ending at the same place, the longer one is the asked one
        self.entries.sort(key=lambda e: -len(e.record.question))

    def find(self, prompt: str) -> tuple[_Entry, int] | None:
        best: tuple[_Entry, int] | None = None
        for e in self.entries:
            pos = prompt.rfind(e.record.question)
            if pos >= 0 and (best is None or pos > best[1]):
                best = (e, pos)
        return best

    def answer(self, prompt: str) -> str | None:
        found = self.find(prompt)
        if found is None:
            return None
        e, pos = found
        r = e.record
        if self.task == "gsm8k":
            value = r.reference if e.correct else _wrong_number(r.reference)
            return f" Let's work it out step by step. The final answer is {value}.\n\n"
        if self.task == "mmlu":
            return " " + (r.reference if e.correct else LETTERS[(LETTERS.index(r.reference) + 1) % 4])
        letter = _gpqa_letter(prompt[pos + len(r.question):], r.choices[0])
        if not e.correct:
            letter = LETTERS[(LETTERS.index(letter) + 1) % 4]
        return f"Thinking it through, one choice fits.\n\nAnswer: {letter}"


def _wrong_number(ref: str) -> str:
    try:
        return normalize_number(str(float(ref) + 1) if "." in ref else str(int(ref) + 1))
    except ValueError:
        return ref + "1"


def _gpqa_letter(rest: str, correct_text: str) -> str:
    """The letter of the choice line holding the correct answer (the line may end in a chat template's
    end-of-turn token, so the answer must be followed by the end of the line or a non-word character)."""
    want = re.escape(correct_text.strip())
    m = re.search(rf"^([A-D])\) {want}(?=$|[^\w ])", rest, re.MULTILINE)
    return m.group(1) if m else "A"
