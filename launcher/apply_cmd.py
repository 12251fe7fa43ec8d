"""`srtctl apply -f FILE [--tags a,b] [--setup-script x.sh] [--local] [--resume RUN_DIR [-f FILE] [--force]]`.

Every flag is honoured or refused: `--resume` with `--tags`/`--setup-script` is an error (the run
keeps its own), `--force` needs `--resume`, and `--resume RUN_DIR -f FILE` takes FILE when it only
changes benchmark points (finished points are kept, new ones measured), refuses a changed
deployment and names what differs (`--force` takes it anyway).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from srt_agent.errors import ConfigError

from . import sbatch
from .paths import display, logs_dir
from .prepare import metadata, prepare, render_sbatch, write_files


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", help="job YAML")
    parser.add_argument("--tags", help="comma-separated tags saved in the run metadata")
    parser.add_argument("--setup-script", help="script name inside configs/ run on every worker node first")
    parser.add_argument("--local", action="store_true", help="run here with the local executor (no SLURM)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="resume an interrupted run, skipping finished work")
    parser.add_argument("--force", action="store_true", help="with --resume: resume even if the config changed")
    from .sweep_cmd import add_override_arguments

    add_override_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.resume:
        for flag, value in (("--tags", args.tags), ("--setup-script", args.setup_script)):
            if value:
                raise ConfigError(f"{flag} cannot be combined with --resume: a resumed run keeps the {flag[2:]} "
                                  "it was submitted with", key=flag,
                                  hint=f"drop {flag}, or submit a new run with `srtctl apply -f FILE {flag} ...`")
        return _resume(args)
    if args.force:
        raise ConfigError("--force only applies to --resume RUN_DIR", key="--force",
                          hint="drop --force, or add --resume RUN_DIR")
    if not args.file:
        raise ConfigError("apply needs -f FILE (or --resume RUN_DIR)", key="-f")
    from .sweep_cmd import apply_sweep, load_request

    req = load_request(args)
    if req.sweep is not None:
        return apply_sweep(req, args.local or req.cluster.executor == "local")
    prep = req.prep
    local = args.local or prep.cluster.executor == "local"
    logs = logs_dir(prep.cluster)
    if local:
        job_id = str(int(time.time() * 1000) % 1_000_000_000)
        run_dir = logs / f"{job_id}{prep.run_suffix}"
        write_files(run_dir, {**prep.files, "metadata.json": _json(metadata(prep, job_id, "local"))})
        print(f"Started local job {job_id}")
        print(f"Logs: {display(run_dir)}/")
        sys.stdout.flush()
        return run_local_agent(run_dir, job_id, extra_env=prep.secret_environment())
    staging = logs / f".pending-{prep.timestamp}-{secrets.token_hex(3)}"
    write_files(staging, prep.files)
    try:
        job_id = sbatch.submit(staging / "job.sbatch", cluster_file=prep.cluster.source,
                               env=prep.secret_environment())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    run_dir = logs / f"{job_id}{prep.run_suffix}"
    try:
        staging.rename(run_dir)
        write_files(run_dir, {"metadata.json": _json(metadata(prep, job_id, "slurm"))})
    except BaseException:
        sbatch.cancel(job_id)
        raise
    sbatch.release(job_id)
    print(f"Submitted batch job {job_id}")
    print(f"Logs: {display(run_dir)}/")
    return 0


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2) + "\n"


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


def _secrets_from_original(run_dir: Path) -> dict[str, str]:
    """Secret environment values are not stored in the run directory: take them from the job file
    the run was submitted from, if it is still there (the agent says which are missing if not)."""
    import json

    from srt_agent.secrets import SECRETS_ENV_VAR, split_job_secrets
    from srt_agent.yaml_source import load_yaml

    job_file = Path(json.loads((run_dir / "resolved.json").read_text())["job_file"])
    if not job_file.is_file():
        return {}
    try:
        data = load_yaml(job_file).data or {}
    except Exception:
        return {}
    _, secrets = split_job_secrets(data)
    return {SECRETS_ENV_VAR: json.dumps(secrets)} if secrets else {}


def _resume(args: argparse.Namespace) -> int:
    import json

    run_dir = Path(args.resume).resolve()
    meta_path = run_dir / "metadata.json"
    if not meta_path.is_file():
        raise ConfigError("not a run directory (no metadata.json)", file=str(run_dir), key="--resume",
                          hint="pass a directory printed by `srtctl apply` (Logs: ...)")
    meta = json.loads(meta_path.read_text())
    if (run_dir / "sweep.json").is_file():  # a sweep in one allocation
        from .sweep_alloc import resume_allocation

        return resume_allocation(run_dir, meta, args)
    if args.file:
        args.force = _take_new_file(run_dir, args.file, force=args.force, local=meta.get("executor") == "local") \
            or args.force
    secret_env = _secrets_from_original(run_dir)
    if meta.get("executor") == "local" or args.local:
        print(f"Resuming local job {meta['job_id']}")
        print(f"Logs: {display(run_dir)}/")
        sys.stdout.flush()
        return run_local_agent(run_dir, str(meta["job_id"]), force=args.force, extra_env=secret_env)
    from srt_agent.resolved import ResolvedJob

    from .prepare import Prepared, placeholder_nodes  # noqa: F401

    resolved = ResolvedJob.read(run_dir / "resolved.json", need_secrets=False)
    prep = Prepared(resolved=resolved, cluster=resolved.cluster, job_path=Path(resolved.job_file),
                    timestamp="", run_suffix="", setup_script=meta.get("setup_script"), tags=meta.get("tags", []),
                    plan=None)  # type: ignore[arg-type]
    script = run_dir / "job.resume.sbatch"
    write_files(run_dir, {"job.resume.sbatch": render_sbatch(prep, fixed_run_dir=str(run_dir))})
    extra = ["--export=ALL,SRT_FORCE_RESUME=1"] if args.force else []
    job_id = sbatch.submit(script, cluster_file=resolved.cluster.source, hold=False, extra=extra, env=secret_env)
    print(f"Submitted batch job {job_id}")
    print(f"Logs: {display(run_dir)}/")
    return 0


# job keys whose change keeps the deployment: finished points stay valid, new points are added
_POINT_KEYS = ("benchmark.concurrencies",)
_IGNORED_KEYS = ("name", "health")


def _flatten(data, prefix: str = "") -> dict[str, object]:
    if isinstance(data, dict):
        out: dict[str, object] = {}
        for k, v in data.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): data}


def _take_new_file(run_dir: Path, job_file: str, *, force: bool, local: bool) -> bool:
    """`--resume RUN_DIR -f FILE`: write FILE's job.yaml/resolved.json into the run when it only
    changes benchmark points (or with --force); refuse otherwise. True when the ledger must accept
    the new config (its fingerprint changed)."""
    import json

    from srt_agent.secrets import split_job_secrets

    prep = prepare(job_file, local=local)
    old = json.loads((run_dir / "resolved.json").read_text())["job"]
    new = json.loads(prep.files["resolved.json"])["job"]
    old_flat, new_flat = _flatten(split_job_secrets(old)[0]), _flatten(split_job_secrets(new)[0])
    differs = sorted(k for k in set(old_flat) | set(new_flat)
                     if old_flat.get(k, "<unset>") != new_flat.get(k, "<unset>")
                     and k.split(".", 1)[0] not in _IGNORED_KEYS)
    if not differs:
        return False
    deployment = [k for k in differs if k not in _POINT_KEYS]
    if deployment and not force:
        shown = "; ".join(f"{k}: {old_flat.get(k, '<unset>')!r} -> {new_flat.get(k, '<unset>')!r}"
                          for k in deployment[:8]) + (" ..." if len(deployment) > 8 else "")
        raise ConfigError(f"{job_file} differs from the run's configuration beyond benchmark points ({shown}); "
                          "resuming would mix results of different deployments", file=str(job_file),
                          key=deployment[0], hint=f"submit a new run (`srtctl apply -f {job_file}`), or add "
                          "--force to resume with the new file anyway")
    write_files(run_dir, {"job.yaml": prep.files["job.yaml"], "resolved.json": prep.files["resolved.json"]})
    print(f"Taking {job_file}: " + ", ".join(differs) + " changed", file=sys.stderr)
    return True
