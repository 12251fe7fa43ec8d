"""Prompts and answer extraction (SGLang's conventions), and the simulated engine's answers."""

from __future__ import annotations

import pytest
from eval_data import write_gpqa, write_gsm8k, write_mmlu

from srt_agent.evals.datasets import load_dataset
from srt_agent.evals.tasks import build_items, extract
from srt_agent.sim.answers import Answers


@pytest.mark.parametrize("text,want", [
    (" 3 + 4 = 7 apples. The answer is 1,234.", "1234"), ("It is -5.", "-5"), ("so 2.50 dollars", "2.5"),
    ("no number here", None)])
def test_gsm8k_extraction_takes_the_last_number(text, want):
    assert extract("gsm8k", text) == want


@pytest.mark.parametrize("task,text,want", [
    ("mmlu", " B", "B"), ("mmlu", " c\n", "C"), ("mmlu", "Answer: D", "D"), ("mmlu", " Because", None),
    ("gpqa", "Reasoning...\nAnswer: C", "C"), ("gpqa", "answer : b", "B"), ("gpqa", "I think B", None)])
def test_letter_extraction(task, text, want):
    assert extract(task, text) == want


def test_gsm8k_prompt_is_sglang_few_shot(tmp_path):
    items = build_items(load_dataset("gsm8k", write_gsm8k(tmp_path, 8), 2), None)
    p = items[0].prompt
    assert p.count("Question: ") == 3 and p.endswith("how many marbles does Tom have now?\nAnswer:")
    assert "#### " in p.split("\n\n")[0] and items[0].stop == ("Question", "Assistant:", "<|separator|>")


def test_mmlu_prompt_and_sampling(tmp_path):
    ds = load_dataset("mmlu", write_mmlu(tmp_path), 5)
    p = build_items(ds, None)[0].prompt
    assert p.startswith("The following are multiple choice questions (with answers) about toy history.\n\n")
    assert p.count("\nAnswer:") == 6 and p.endswith("D. option 3 of 0\nAnswer:")
    assert [i.id for i in build_items(ds, 5)] == [i.id for i in build_items(ds, 5)]  # fixed seed


def test_gpqa_permutation_is_fixed_and_the_reference_letter_points_at_the_correct_answer(tmp_path):
    ds = load_dataset("gpqa", write_gpqa(tmp_path / "g.csv", 8), 0)
    a, b = build_items(ds, None), build_items(ds, None)
    assert a == b
    assert len({i.reference for i in a}) > 1  # shuffled, not always A
    for item, rec in zip(a, ds.records):
        content = item.messages[0]["content"]
        assert f"\n{item.reference}) {rec.choices[0]}" in content


@pytest.mark.parametrize("task", ["gsm8k", "mmlu", "gpqa"])
@pytest.mark.parametrize("accuracy", [0.0, 0.5, 1.0])
def test_simulated_answers_are_right_for_that_fraction_of_the_dataset(tmp_path, task, accuracy):
    path = {"gsm8k": lambda: write_gsm8k(tmp_path, 12), "mmlu": lambda: write_mmlu(tmp_path),
            "gpqa": lambda: write_gpqa(tmp_path / "g.csv", 12)}[task]()
    answers = Answers(str(path), accuracy)
    items = build_items(load_dataset(task, path, 0), None)  # no shots: every question evaluated
    got = [extract(task, answers.answer(i.prompt or i.messages[0]["content"])) for i in items]
    assert None not in got
    assert sum(g == i.reference for g, i in zip(got, items)) == round(accuracy * 12)
    assert Answers(str(path), accuracy).answer(items[3].prompt or items[3].messages[0]["content"]) == \
        answers.answer(items[3].prompt or items[3].messages[0]["content"])
    assert answers.answer("an unrelated prompt") is None


def test_gpqa_answer_finds_the_letter_inside_a_rendered_chat_prompt(tmp_path):
    path = write_gpqa(tmp_path / "g.csv", 12)
    items = build_items(load_dataset("gpqa", path, 0), None)
    answers = Answers(str(path), 1.0)
    for i in items:
        rendered = f"<|im_start|>user\n{i.messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"
        assert extract("gpqa", answers.answer(rendered)) == i.reference
