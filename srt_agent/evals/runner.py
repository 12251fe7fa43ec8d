"""Run one eval against an OpenAI-compatible endpoint: temperature 0, up to `concurrency` in flight.

Writes `eval_<task>_samples.jsonl` (one line per question and run) and `eval_<task>.json` (the score),
both atomically, and returns the result dict.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import anyio
import httpx

from ..atomic import write_json_atomic, write_text_atomic
from .config import EvalSpec
from .datasets import load_dataset
from .tasks import HARNESS, Item, build_items, extract

REQUEST_TIMEOUT_S = 1800.0


def result_paths(out_dir: Path, task: str) -> tuple[Path, Path]:
    return out_dir / f"eval_{task}.json", out_dir / f"eval_{task}_samples.jsonl"


async def _ask(client: httpx.AsyncClient, url: str, model: str, item: Item, max_tokens: int) -> str:
    if item.messages is not None:
        body = {"model": model, "messages": list(item.messages), "max_tokens": max_tokens, "temperature": 0.0}
        r = await client.post(f"{url}/v1/chat/completions", json=body)
    else:
        body = {"model": model, "prompt": item.prompt, "max_tokens": max_tokens, "temperature": 0.0}
        if item.stop:
            body["stop"] = list(item.stop)
        r = await client.post(f"{url}/v1/completions", json=body)
    if r.status_code != 200:
        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
    choice = r.json()["choices"][0]
    text = choice["message"]["content"] if item.messages is not None else choice["text"]
    return text or ""


async def _one_run(client: httpx.AsyncClient, spec: EvalSpec, url: str, model: str, items: list[Item]) -> list[dict]:
    samples: list[dict | None] = [None] * len(items)
    limiter = anyio.CapacityLimiter(spec.concurrency)

    async def one(i: int, item: Item) -> None:
        async with limiter:
            t0 = time.monotonic()
            error = None
            try:
                text = await _ask(client, url, model, item, spec.max_tokens)
            except (httpx.HTTPError, RuntimeError, KeyError, IndexError, TypeError, ValueError) as exc:
                text, error = "", f"{type(exc).__name__}: {exc}"
            latency = time.monotonic() - t0
        answer = None if error else extract(spec.task, text)
        samples[i] = {"id": item.id, **({"subject": item.subject} if item.subject is not None else {}),
                      "extracted": answer, "reference": item.reference,
                      "correct": answer is not None and answer == item.reference,
                      "latency": round(latency, 4), "completion": text, "error": error}

    async with anyio.create_task_group() as tg:
        for i, item in enumerate(items):
            tg.start_soon(one, i, item)
    return [s for s in samples if s is not None]


def score_of(samples: list[dict]) -> dict:
    n = len(samples)
    correct = sum(1 for s in samples if s["correct"])
    return {"score": correct / n if n else 0.0, "num_examples": n, "num_correct": correct}


async def run_eval(spec: EvalSpec, url: str, model: str, out_dir: Path) -> dict:
    """The eval, `spec.repeat` times over the same questions (the incumbent's `repeat`): the score is
    the mean over every run's answers; with repeat > 1 each run's score and their stdev are recorded."""
    ds = load_dataset(spec.task, spec.dataset_path, spec.num_shots)
    items = build_items(ds, spec.num_examples)
    start = time.monotonic()
    limits = httpx.Limits(max_connections=spec.concurrency, max_keepalive_connections=spec.concurrency)
    done: list[dict] = []
    runs: list[dict] = []
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        for r in range(spec.repeat):
            samples = await _one_run(client, spec, url, model, items)
            if spec.repeat > 1:
                samples = [{**s, "run": r} for s in samples]
                runs.append(score_of(samples))
            done.extend(samples)
    result = {"task": spec.task, **score_of(done),
              "num_failed": sum(1 for s in done if s["error"]),
              "num_invalid": sum(1 for s in done if not s["error"] and s["extracted"] is None)}
    if runs:
        scores = [x["score"] for x in runs]
        result.update(repeat=spec.repeat, runs=runs, score_stdev=statistics.stdev(scores))
    if spec.task == "mmlu":
        by: dict[str, list[dict]] = {}
        for s in done:
            by.setdefault(s["subject"], []).append(s)
        result["per_subject"] = {k: score_of(v) for k, v in sorted(by.items())}
    result["duration"] = round(time.monotonic() - start, 3)
    result["settings"] = {**spec.settings(), "temperature": 0.0, "harness": HARNESS[spec.task],
                          "endpoint": url, "model": model}
    if spec.min_score is not None:
        result["min_score"] = spec.min_score
        result["passed"] = result["score"] >= spec.min_score
    out_dir.mkdir(parents=True, exist_ok=True)
    result_file, samples_file = result_paths(out_dir, spec.task)
    write_text_atomic(samples_file, "".join(json.dumps(s) + "\n" for s in done))
    write_json_atomic(result_file, result)
    return result
