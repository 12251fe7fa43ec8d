"""Talking to SLURM from the submit side: sbatch, release, cancel, and errors with their fix."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from srt_agent.errors import SubmitError

# (pattern in sbatch's stderr, cluster-file setting that fixes it)
KNOWN_ERRORS = [
    (re.compile(r"Invalid generic resource \(gres\) specification"), "use_gpus_per_node_directive: false",
     "this cluster does not accept --gpus-per-node"),
    (re.compile(r"Invalid --segment specification|unrecognized option '--segment"), "use_segment_sbatch_directive: false",
     "this cluster does not support --segment"),
]


def explain(stderr: str, cluster_file: str | None) -> str:
    text = stderr.strip()
    where = cluster_file or "srtslurm.yaml"
    for pattern, setting, why in KNOWN_ERRORS:
        if pattern.search(text):
            return f"sbatch refused the job: {text}\n  {why}.\n  fix: set `{setting}` in {where} and submit again"
    return f"sbatch refused the job: {text or '(no message)'}"


def submit(script: Path, *, cluster_file: str | None, hold: bool = True, extra: list[str] | None = None,
           env: dict[str, str] | None = None) -> str:
    """sbatch the script; `env` is added to the environment sbatch exports to the job."""
    import os

    cmd = ["sbatch", "--parsable", *(["--hold"] if hold else []), *(extra or []), str(script)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise SubmitError("sbatch not found on PATH",) from None
    if proc.returncode != 0:
        raise SubmitError(explain(proc.stderr, cluster_file))
    job_id = proc.stdout.strip().split(";")[0]
    if not job_id.isdigit():
        raise SubmitError(f"sbatch printed an unexpected job id: {proc.stdout.strip()!r}")
    return job_id


def release(job_id: str) -> None:
    proc = subprocess.run(["scontrol", "release", job_id], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        cancel(job_id)
        raise SubmitError(f"could not release held job {job_id}: {proc.stderr.strip()}")


def cancel(job_id: str) -> None:
    subprocess.run(["scancel", job_id], capture_output=True, text=True, timeout=60, check=False)
