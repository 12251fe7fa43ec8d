"""Accuracy evals (gsm8k, MMLU, GPQA) against the deployment's public endpoint; see docs/evals.md."""
