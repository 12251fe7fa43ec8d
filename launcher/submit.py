"""Submitting and running what apply prepared, for one job and for sweeps (apply_cmd, sweep_apply,
sweep_alloc): stage a run directory and hold it in SLURM until it is complete, resume a run with a
fresh sbatch script, or run the agent here (`python -m srt_agent RUN_DIR` as a subprocess: srtctl
never imports the agent).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from srt_agent.resolved import ResolvedJob
from srt_agent.secrets import SECRETS_ENV_VAR, split_job_secrets
from srt_agent.yaml_source import load_yaml

from . import sbatch
from .console import display
from .prepare import Prepared, render_sbatch, write_files


def json_text(data: dict) -> str:
    return json.dumps(data, indent=2) + "\n"


def local_job_id(offset: int = 0) -> str:
    """A job id for a local run (no SLURM to hand one out): milliseconds, wrapped to 9 digits."""
    return str(int(time.time() * 1000) % 1_000_000_000 + offset)


def submit_held(logs: Path, timestamp: str, files: dict[str, str], *, cluster_file: str | None,
                env: dict[str, str], run_name: Callable[[str], str]) -> tuple[str, Path]:
    """Write files to a staging directory, `sbatch --hold` its job.sbatch and rename the directory to
    logs/run_name(job_id): (job id, run directory). The job stays held: the caller writes what needs
    the job id, then releases it (sbatch.release), or cancels it on failure. A failure here leaves
    nothing behind (no staging directory, no job)."""
    staging = logs / f".pending-{timestamp}-{secrets.token_hex(3)}"
    write_files(staging, files)
    try:
        job_id = sbatch.submit(staging / "job.sbatch", cluster_file=cluster_file, env=env)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    run_dir = logs / run_name(job_id)
    try:
        staging.rename(run_dir)
    except BaseException:
        sbatch.cancel(job_id)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return job_id, run_dir


def print_submitted(job_id: str, run_dir: Path) -> None:
    print(f"Submitted batch job {job_id}")
    print(f"Logs: {display(run_dir)}/")


def print_started(job_id: str, run_dir: Path, verb: str = "Started") -> None:
    print(f"{verb} local job {job_id}")
    print(f"Logs: {display(run_dir)}/")
    sys.stdout.flush()


def secrets_from_original(run_dir: Path) -> dict[str, str]:
    """Secret environment values are not stored in the run directory: take them from the job file
    the run was submitted from, if it is still there (the agent says which are missing if not)."""
    job_file = Path(json.loads((run_dir / "resolved.json").read_text())["job_file"])
    if not job_file.is_file():
        return {}
    try:
        data = load_yaml(job_file).data or {}
    except Exception:
        return {}
    _, found = split_job_secrets(data)
    return {SECRETS_ENV_VAR: json.dumps(found)} if found else {}


def resume(run_dir: Path, meta: dict, *, resolved_json: Path, force: bool, local: bool,
           nodes: int | None = None, job_name: str | None = None) -> int:
    """Continue a run in its own directory: the agent here (local), or a new sbatch job from
    job.resume.sbatch; secrets from the job file of resolved_json, SRT_FORCE_RESUME with force."""
    secret_env = secrets_from_original(resolved_json.parent)
    if meta.get("executor") == "local" or local:
        print_started(str(meta["job_id"]), run_dir, verb="Resuming")
        return run_local_agent(run_dir, str(meta["job_id"]), force=force, extra_env=secret_env)
    resolved = ResolvedJob.read(resolved_json, need_secrets=False)
    prep = Prepared(resolved=resolved, cluster=resolved.cluster, job_path=Path(resolved.job_file), timestamp="",
                    run_suffix="", setup_script=meta.get("setup_script"), tags=meta.get("tags", []),
                    plan=None)  # type: ignore[arg-type]
    write_files(run_dir, {"job.resume.sbatch": render_sbatch(prep, fixed_run_dir=str(run_dir), nodes=nodes,
                                                             job_name=job_name)})
    extra = ["--export=ALL,SRT_FORCE_RESUME=1"] if force else []
    job_id = sbatch.submit(run_dir / "job.resume.sbatch", cluster_file=resolved.cluster.source, hold=False,
                           extra=extra, env=secret_env)
    print_submitted(job_id, run_dir)
    return 0


def run_local_agent(run_dir: Path, job_id: str, force: bool = False, extra_env: dict[str, str] | None = None) -> int:
    """Run the agent here in the foreground; SIGTERM/SIGINT/SIGHUP are passed on and waited for,
    so srtctl never exits before the agent has torn everything down."""
    env = {**os.environ, **(extra_env or {}), "SRT_EXECUTOR": "local", "SRT_JOB_ID": job_id}
    if force:
        env["SRT_FORCE_RESUME"] = "1"
    # the agent's output goes to stderr and, as under SLURM, to slurm-<job id>.out in the run dir
    proc = subprocess.Popen([sys.executable, "-m", "srt_agent", str(run_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    copier = threading.Thread(target=_tee, args=(proc.stdout, run_dir / f"slurm-{job_id}.out"), daemon=True)
    copier.start()

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        code = proc.wait()
        copier.join(timeout=5)
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _tee(stream, path: Path) -> None:
    with open(path, "ab") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            out.flush()
            sys.stderr.buffer.write(line)  # stdout keeps only srtctl's own lines (job id, Logs:)
            sys.stderr.flush()
