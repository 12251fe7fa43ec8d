"""Dry-run/apply checks of the datasets a job names: each is loaded in full, so a missing or
malformed file is reported before anything is submitted (with the job-file line that names it)."""

from __future__ import annotations

from ..errors import ConfigError, DatasetError
from .config import eval_spec


def _detect_task(path: str) -> str:
    return "gsm8k" if path.endswith(".jsonl") else "gpqa" if path.endswith(".csv") else "mmlu"


def check_datasets(job, doc) -> list[ConfigError]:
    checks = []
    spec = eval_spec(job.benchmark)
    if spec is not None:
        loc = ("benchmark", "dataset_path") if job.benchmark.type == spec.task else ("benchmark", "accuracy",
                                                                                     "dataset_path")
        checks.append((spec.task, spec.dataset_path, spec.num_shots, loc))
    answers = job.backend.sim.answers if job.backend.engine == "sim" else None
    if answers is not None and (spec is None or answers.dataset_path != spec.dataset_path):
        checks.append((_detect_task(answers.dataset_path), answers.dataset_path, 0,
                       ("backend", "sim", "answers", "dataset_path")))
    errors = []
    for task, path, shots, loc in checks:
        from .datasets import load_dataset  # lazy, CLI start-up: a job without datasets loads no dataset reader

        try:
            load_dataset(task, path, shots)
        except DatasetError as exc:
            where = exc.file + (f":{exc.line}" if exc.line else "")
            errors.append(ConfigError(f"{task} dataset {where}: {exc.message}", file=doc.path,
                                      line=doc.line_of(loc) or doc.line_of(loc[:-1]), key=".".join(loc),
                                      value=path, hint=exc.hint))
    return errors
