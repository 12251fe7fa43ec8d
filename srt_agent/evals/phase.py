"""The eval phase of the agent: an eval benchmark (type gsm8k/mmlu/gpqa) or the gate before a sweep.

Resumable through the ledger: a finished eval (phase `eval_<task>` with its result file) is not
run again; its score is re-read and the gate applied again.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import BenchmarkError, EvalGateError
from .config import EvalSpec
from .runner import result_paths, run_eval


def gate_message(result: dict, rel: str) -> str:
    return (f"accuracy gate: {result['task']} score {result['score']:.4f} is below min_score "
            f"{result['min_score']:.4f} ({result['num_correct']}/{result['num_examples']} correct, "
            f"{result['num_invalid']} without an answer, {result['num_failed']} failed; see {rel})")


def summary(result: dict, rel: str) -> dict:
    keys = ("score", "num_examples", "num_correct", "num_failed", "num_invalid", "min_score", "passed", "repeat",
            "score_stdev")
    out = {**{k: result.get(k) for k in keys}, "file": rel}
    if result.get("runs"):
        out["run_scores"] = [r["score"] for r in result["runs"]]
    return {k: v for k, v in out.items() if v is not None or k in ("min_score", "passed")}


async def run_eval_phase(spec: EvalSpec, *, url: str, model: str, run_dir: Path, ledger, status,
                         max_failed_fraction: float) -> dict:
    phase = f"eval_{spec.task}"
    result_file, _ = result_paths(run_dir / "results", spec.task)
    rel = str(result_file.relative_to(run_dir))
    if ledger.phase_done(phase) and result_file.is_file():
        result = json.loads(result_file.read_text())
        status.event("phase_skipped", phase=phase, reason="already done", file=rel)
    else:
        status.event("eval_start", task=spec.task, dataset=spec.dataset_path)
        result = await run_eval(spec, url, model, run_dir / "results")
        ledger.mark_phase(phase, file=rel, score=result["score"])
        status.event("eval_done", task=spec.task, score=result["score"], file=rel)
    evals = dict(status.data.get("evals") or {})
    evals[spec.task] = summary(result, rel)
    status.update(evals=evals)
    n = result["num_examples"] or 1
    if result["num_failed"] / n > max_failed_fraction:
        raise BenchmarkError(f"{spec.task}: {result['num_failed']} of {result['num_examples']} eval requests "
                             f"failed (more than max_failed_fraction {max_failed_fraction}); see {rel} and "
                             f"results/eval_{spec.task}_samples.jsonl")
    if spec.min_score is not None and result["score"] < spec.min_score:
        raise EvalGateError(gate_message(result, rel))
    return result
