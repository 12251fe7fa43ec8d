"""Loading and strictly checking the three published dataset formats (tiny made-up datasets)."""

from __future__ import annotations

import csv
import json

import pytest
from eval_data import write_gpqa, write_gsm8k, write_mmlu

from srt_agent.errors import DatasetError
from srt_agent.evals.datasets import load_dataset


def test_gsm8k_reference_is_the_number_after_the_marks(tmp_path):
    ds = load_dataset("gsm8k", write_gsm8k(tmp_path, 400), 5)
    assert len(ds.shots[""]) == 5 and len(ds.records) == 395
    assert ds.records[-1].reference == str((399 + 2) + (3 * 399 + 1))  # "1,599" written with a comma


def test_gsm8k_shots_come_from_train_jsonl_when_it_is_next_to_the_file(tmp_path):
    write_gsm8k(tmp_path, 6, name="train.jsonl")
    ds = load_dataset("gsm8k", write_gsm8k(tmp_path, 4), 5)
    assert len(ds.records) == 4 and len(ds.shots[""]) == 5


def test_mmlu_and_gpqa_load(tmp_path):
    m = load_dataset("mmlu", write_mmlu(tmp_path / "mmlu", n=3), 5)
    assert len(m.records) == 6 and set(m.shots) == {"toy_physics", "toy_history"}
    assert {r.reference for r in m.records} <= set("ABCD")
    g = load_dataset("gpqa", write_gpqa(tmp_path / "g.csv", 4), 0)
    assert [r.id for r in g.records] == ["rec000", "rec001", "rec002", "rec003"]
    assert g.records[0].choices[0] == g.records[0].reference == "right compound 0"


def _bad(task, path, shots=0) -> str:
    with pytest.raises(DatasetError) as exc:
        load_dataset(task, path, shots)
    return str(exc.value)


def test_gsm8k_errors_name_the_file_line_and_problem(tmp_path):
    assert "file not found" in _bad("gsm8k", tmp_path / "nope.jsonl")
    p = write_gsm8k(tmp_path, 6)
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:2] + ["{not json"] + lines[3:]) + "\n")
    msg = _bad("gsm8k", p)
    assert f"{p}:3" in msg and "not a JSON object" in msg and "fix:" in msg
    p.write_text("\n".join(lines[:4] + [json.dumps({"question": "q", "answer": "no number"})]) + "\n")
    assert f"{p}:5" in _bad("gsm8k", p) and "#### <number>" in _bad("gsm8k", p)
    p.write_text(json.dumps({"question": "q"}) + "\n")
    assert "missing or empty 'answer'" in _bad("gsm8k", p)
    p.write_text("\n".join(lines[:3]) + "\n")
    assert "too few for num_shots 5" in _bad("gsm8k", p, 5)


def test_mmlu_errors(tmp_path):
    d = write_mmlu(tmp_path / "mmlu")
    assert "no dev/ folder" in _bad("mmlu", tmp_path) or "no dev/" in _bad("mmlu", tmp_path)
    (d / "dev" / "toy_history_dev.csv").unlink()
    msg = _bad("mmlu", d, 5)
    assert "toy_history_dev.csv" in msg and "file not found" in msg
    write_mmlu(d)
    with open(d / "test" / "toy_physics_test.csv", "a", newline="") as f:
        csv.writer(f).writerow(["q", "a", "b", "c", "d", "E"])
    msg = _bad("mmlu", d, 5)
    assert "toy_physics_test.csv:7" in msg and "'E' is not one of A, B, C, D" in msg
    with open(d / "test" / "toy_physics_test.csv", "w", newline="") as f:
        csv.writer(f).writerow(["question", "A", "B", "C", "D"])
    assert "5 columns" in _bad("mmlu", d, 5)
    assert "is not a directory" in _bad("mmlu", d / "test" / "toy_physics_test.csv")


def test_gpqa_errors(tmp_path):
    p = tmp_path / "gpqa.csv"
    p.write_text("Question,Correct Answer,Incorrect Answer 1\nq,a,b\n")
    msg = _bad("gpqa", p)
    assert f"{p}:1" in msg and "'Incorrect Answer 2', 'Incorrect Answer 3'" in msg
    write_gpqa(p, 3)
    rows = p.read_text().splitlines()
    rows[2] = "rec001,question,,w1,w2,w3,toy"
    p.write_text("\n".join(rows) + "\n")
    assert f"{p}:3" in _bad("gpqa", p) and "empty 'Correct Answer'" in _bad("gpqa", p)
    p.write_bytes(b"\xff\xfe\x00bad")
    assert "not UTF-8" in _bad("gpqa", p)
