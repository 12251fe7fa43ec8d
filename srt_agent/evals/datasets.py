"""Eval datasets read from local files in their published formats, checked strictly.

- gsm8k: JSONL, one object per line with `question` and `answer`; the answer ends in `#### N`.
  Few-shot examples come from `train.jsonl` next to the file if it exists, else from the file's
  own first `num_shots` lines (which are then not evaluated).
- MMLU: a directory with `dev/<subject>_dev.csv` and `test/<subject>_test.csv`; CSV without a
  header, six columns: question, choices A-D, answer letter.
- GPQA: one CSV with a header holding `Question`, `Correct Answer`, `Incorrect Answer 1..3`
  (gpqa_diamond.csv, gpqa_main.csv, ...).

Every problem is a DatasetError naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError

TASKS = ("gsm8k", "mmlu", "gpqa")
LETTERS = "ABCD"
GPQA_COLUMNS = ("Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")
_GSM8K_REF = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")

HINTS = {
    "gsm8k": "give the path of gsm8k's test.jsonl (see docs/evals.md for where to get it)",
    "mmlu": "give the MMLU data directory holding dev/ and test/ (see docs/evals.md)",
    "gpqa": "give the path of a GPQA CSV such as gpqa_diamond.csv (see docs/evals.md)",
}


@dataclass(frozen=True)
class Record:
    """One question of a dataset; `choices` for MMLU (A-D order) and GPQA (correct answer first)."""

    id: str
    question: str
    reference: str
    subject: str | None = None
    choices: tuple[str, ...] = ()
    solution: str = ""  # gsm8k: the full reference answer (worked solution + #### N)


@dataclass
class Dataset:
    task: str
    path: Path
    records: list[Record]
    shots: dict[str, list[Record]] = field(default_factory=dict)  # subject ("" for gsm8k) -> examples


def _err(task: str, path: Path, msg: str, line: int | None = None) -> DatasetError:
    return DatasetError(msg, file=str(path), line=line, key=f"{task} dataset", hint=HINTS[task])


def normalize_number(text: str) -> str:
    """'1,234' -> '1234', '3.50' -> '3.5', '-0' -> '0': the form numbers are compared in."""
    t = text.replace(",", "").strip().rstrip(".")
    try:
        if "." in t:
            v = float(t)
            return str(int(v)) if v.is_integer() else repr(v)
        return str(int(t))
    except ValueError:
        return t


def gsm8k_reference(answer: str) -> str | None:
    m = _GSM8K_REF.search(answer.strip())
    return normalize_number(m.group(1)) if m else None


def _read_gsm8k_file(path: Path) -> list[Record]:
    if not path.is_file():
        raise _err("gsm8k", path, "file not found" if not path.exists() else "is not a file")
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise _err("gsm8k", path, f"not UTF-8 text ({exc.reason})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _err("gsm8k", path, f"not a JSON object ({exc.msg}); gsm8k is JSONL, one object per line",
                       n) from None
        if not isinstance(obj, dict):
            raise _err("gsm8k", path, "not a JSON object; gsm8k is JSONL, one object per line", n)
        missing = [k for k in ("question", "answer") if not isinstance(obj.get(k), str) or not obj[k].strip()]
        if missing:
            raise _err("gsm8k", path, f"missing or empty {', '.join(repr(k) for k in missing)}", n)
        ref = gsm8k_reference(obj["answer"])
        if ref is None:
            raise _err("gsm8k", path, "'answer' does not end in '#### <number>'", n)
        out.append(Record(id=str(n - 1), question=obj["question"].strip(), reference=ref,
                          solution=obj["answer"].strip()))
    if not out:
        raise _err("gsm8k", path, "no questions in the file")
    return out


def load_gsm8k(path: Path, num_shots: int) -> Dataset:
    records = _read_gsm8k_file(path)
    train = path.with_name("train.jsonl")
    if num_shots and train.is_file() and train.resolve() != path.resolve():
        shots = _read_gsm8k_file(train)[:num_shots]
    else:
        shots, records = records[:num_shots], records[num_shots:]
    if len(shots) < num_shots or not records:
        raise _err("gsm8k", path, f"{len(shots) + len(records)} question(s) are too few for num_shots {num_shots} "
                                  f"plus at least one question to evaluate")
    return Dataset("gsm8k", path, records, {"": shots})


def _read_mmlu_csv(path: Path, subject: str) -> list[Record]:
    out = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(f), 1):
                if not row:
                    continue
                if len(row) != 6:
                    raise _err("mmlu", path, f"{len(row)} columns; MMLU CSV rows have 6 (question, A, B, C, D, "
                                             f"answer letter) and no header", n)
                answer = row[5].strip().upper()
                if answer not in LETTERS:
                    raise _err("mmlu", path, f"answer {row[5]!r} is not one of A, B, C, D", n)
                out.append(Record(id=f"{subject}/{n - 1}", question=row[0].strip(), reference=answer,
                                  subject=subject, choices=tuple(c.strip() for c in row[1:5])))
    except UnicodeDecodeError as exc:
        raise _err("mmlu", path, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise _err("mmlu", path, f"not valid CSV ({exc})") from None
    return out


def load_mmlu(path: Path, num_shots: int) -> Dataset:
    if not path.is_dir():
        raise _err("mmlu", path, "directory not found" if not path.exists() else
                   "is not a directory; MMLU is a directory with dev/ and test/ folders of per-subject CSVs")
    for sub in ("dev", "test"):
        if not (path / sub).is_dir():
            raise _err("mmlu", path, f"no {sub}/ folder (MMLU's data directory has dev/ and test/)")
    tests = sorted((path / "test").glob("*_test.csv"))
    if not tests:
        raise _err("mmlu", path / "test", "no <subject>_test.csv files")
    records: list[Record] = []
    shots: dict[str, list[Record]] = {}
    for t in tests:
        subject = t.name[: -len("_test.csv")]
        dev = path / "dev" / f"{subject}_dev.csv"
        if num_shots:
            if not dev.is_file():
                raise _err("mmlu", dev, f"file not found; subject {subject!r} needs {num_shots} dev examples")
            shots[subject] = _read_mmlu_csv(dev, subject)[:num_shots]
            if len(shots[subject]) < num_shots:
                raise _err("mmlu", dev, f"{len(shots[subject])} example(s), fewer than num_shots {num_shots}")
        else:
            shots[subject] = []
        rows = _read_mmlu_csv(t, subject)
        if not rows:
            raise _err("mmlu", t, "no questions in the file")
        records += rows
    return Dataset("mmlu", path, records, shots)


def load_gpqa(path: Path) -> Dataset:
    if not path.is_file():
        raise _err("gpqa", path, "file not found" if not path.exists() else "is not a file")
    records = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in GPQA_COLUMNS if c not in header]
            if missing:
                raise _err("gpqa", path, f"header lacks column(s) {', '.join(repr(c) for c in missing)}", 1)
            for row in reader:
                n = reader.line_num
                if None in row:
                    raise _err("gpqa", path, "more fields than the header has columns", n)
                values = [(row.get(c) or "").strip() for c in GPQA_COLUMNS]
                empty = [c for c, v in zip(GPQA_COLUMNS, values) if not v]
                if empty:
                    raise _err("gpqa", path, f"empty {', '.join(repr(c) for c in empty)}", n)
                rid = (row.get("Record ID") or "").strip() or str(len(records))
                records.append(Record(id=rid, question=values[0], reference=values[1], choices=tuple(values[1:])))
    except UnicodeDecodeError as exc:
        raise _err("gpqa", path, f"not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise _err("gpqa", path, f"not valid CSV ({exc})") from None
    if not records:
        raise _err("gpqa", path, "no questions in the file")
    return Dataset("gpqa", path, records)


def load_dataset(task: str, dataset_path: str | Path, num_shots: int) -> Dataset:
    path = Path(dataset_path)
    if task == "gsm8k":
        return load_gsm8k(path, num_shots)
    if task == "mmlu":
        return load_mmlu(path, num_shots)
    if task == "gpqa":
        return load_gpqa(path)
    raise ValueError(f"unknown eval task {task!r}")
