"""Tiny eval datasets in the published formats (gsm8k JSONL, MMLU CSV folders, GPQA CSV), made up
by the tests: never copies of the real datasets."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def write_gsm8k(directory: Path, n: int = 12, *, name: str = "test.jsonl") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    lines = []
    for i in range(n):
        a, b = i + 2, 3 * i + 1
        lines.append(json.dumps({"question": f"Tom has {a} red marbles and finds {b} more. Case {i}: how many "
                                             f"marbles does Tom have now?",
                                 "answer": f"Tom has {a} + {b} = <<{a}+{b}={a + b}>>{a + b} marbles.\n#### {a + b:,}"}))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_mmlu(directory: Path, subjects: tuple[str, ...] = ("toy_physics", "toy_history"), n: int = 6,
               n_dev: int = 5) -> Path:
    for sub in ("dev", "test"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for s, subject in enumerate(subjects):
        for split, count in (("dev", n_dev), ("test", n)):
            with open(directory / split / f"{subject}_{split}.csv", "w", newline="") as f:
                w = csv.writer(f)
                for i in range(count):
                    w.writerow([f"In {subject} ({split} {i}), which option is number {(i + s) % 4}?",
                                *(f"option {j} of {i}" for j in range(4)), "ABCD"[(i + s) % 4]])
    return directory


def write_gpqa(path: Path, n: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Record ID", "Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2",
                    "Incorrect Answer 3", "Subdomain"])
        for i in range(n):
            w.writerow([f"rec{i:03d}", f"Made-up question {i}: which compound, with comma, is stable?",
                        f"right compound {i}", f"wrong alpha {i}", f"wrong beta {i}", f"wrong gamma {i}", "toy"])
    return path
