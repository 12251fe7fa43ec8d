"""Job-file settings of an accuracy eval: `benchmark.type: gsm8k|mmlu|gpqa`, or `benchmark.accuracy`."""
# no `from __future__ import annotations`: pydantic reads the field types as objects, not strings to compile
# (CLI start-up); quote a forward reference (-> "Model") and import at run time what an annotation names

from dataclasses import asdict, dataclass
from typing import Literal

from pydantic import Field

from ..cluster_config import Strict

EVAL_TYPES = ("gsm8k", "mmlu", "gpqa")
EvalTask = Literal["gsm8k", "mmlu", "gpqa"]

# the eval keys of `benchmark` (for type gsm8k/mmlu/gpqa) and of `benchmark.accuracy`
EVAL_KEYS = ("dataset_path", "num_examples", "num_shots", "concurrency", "max_tokens", "min_score", "repeat")
MAX_REPEAT = 64


class AccuracySection(Strict):
    """An eval run after the health phase and before the first sa-bench point; below min_score the job fails."""

    task: EvalTask = Field(..., description="gsm8k, mmlu or gpqa")
    dataset_path: str = Field(..., min_length=1, description="local dataset in its published format (docs/evals.md)")
    num_examples: int | None = Field(None, ge=1, description="questions evaluated; default: all")
    num_shots: int | None = Field(None, ge=0, le=20, description="few-shot examples; default 5 (gsm8k, mmlu), 0 (gpqa)")
    concurrency: int = Field(64, ge=1, le=4096, description="requests in flight")
    max_tokens: int | None = Field(None, ge=1, description="completion limit; default 512 (gsm8k), 8 (mmlu), 2048 (gpqa)")
    min_score: float | None = Field(None, ge=0, le=1, description="below it the job fails before any point")
    repeat: int | None = Field(None, ge=1, le=MAX_REPEAT, description="runs of the whole eval; the score is their mean (each run and the stdev are recorded)")


@dataclass(frozen=True)
class EvalSpec:
    """An eval with its defaults filled in: what the agent runs and the result file records."""

    task: str
    dataset_path: str
    num_examples: int | None
    num_shots: int
    concurrency: int
    max_tokens: int
    min_score: float | None
    repeat: int = 1

    def settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "task"}


def make_spec(task: str, dataset_path: str, *, num_examples: int | None = None, num_shots: int | None = None,
              concurrency: int | None = None, max_tokens: int | None = None,
              min_score: float | None = None, repeat: int | None = None) -> EvalSpec:
    from .tasks import DEFAULTS  # lazy, CLI start-up: a job without an eval loads no eval tasks

    shots, tokens = DEFAULTS[task]
    return EvalSpec(task=task, dataset_path=dataset_path, num_examples=num_examples,
                    num_shots=shots if num_shots is None else num_shots,
                    concurrency=concurrency or 64, max_tokens=max_tokens or tokens, min_score=min_score,
                    repeat=repeat or 1)


def eval_spec(benchmark) -> EvalSpec | None:
    """The eval a job runs: its benchmark itself (type gsm8k/mmlu/gpqa) or the sa-bench gate, else None."""
    if benchmark.type in EVAL_TYPES:
        return make_spec(benchmark.type, benchmark.dataset_path,
                         **{k: getattr(benchmark, k) for k in EVAL_KEYS if k != "dataset_path"})
    acc = getattr(benchmark, "accuracy", None)
    if acc is not None:
        return make_spec(acc.task, acc.dataset_path, **{k: getattr(acc, k) for k in EVAL_KEYS if k != "dataset_path"})
    return None
