"""`srtctl apply -f FILE [--tags a,b] [--setup-script x.sh] [--local] [--resume RUN_DIR [-f FILE] [--force]]`.

Every flag is honoured or refused: `--resume` with `--tags`/`--setup-script` is an error (the run
keeps its own), `--force` needs `--resume`, and `--resume RUN_DIR -f FILE` takes FILE when it only
changes benchmark points (finished points are kept, new ones measured), refuses a changed
deployment and names what differs (`--force` takes it anyway).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from srt_agent.errors import ConfigError
from srt_agent.rundir import logs_dir
from srt_agent.secrets import split_job_secrets

from . import sbatch
from .prepare import metadata, prepare, write_files
from .submit import json_text, local_job_id, print_started, print_submitted, resume, run_local_agent, submit_held
from .sweep_alloc import resume_allocation
from .sweep_apply import apply_sweep
from .sweep_cmd import add_override_arguments, load_request


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", help="job YAML")
    parser.add_argument("--tags", help="comma-separated tags saved in the run metadata")
    parser.add_argument("--setup-script", help="script name inside configs/ run on every worker node first")
    parser.add_argument("--local", action="store_true", help="run here with the local executor (no SLURM)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="resume an interrupted run, skipping finished work")
    parser.add_argument("--force", action="store_true", help="with --resume: resume even if the config changed")
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
    req = load_request(args)
    if req.sweep is not None:
        return apply_sweep(req, args.local or req.cluster.executor == "local")
    prep = req.prep
    local = args.local or prep.cluster.executor == "local"
    logs = logs_dir(prep.cluster)
    if local:
        job_id = local_job_id()
        run_dir = logs / f"{job_id}{prep.run_suffix}"
        write_files(run_dir, {**prep.files, "metadata.json": json_text(metadata(prep, job_id, "local"))})
        print_started(job_id, run_dir)
        return run_local_agent(run_dir, job_id, extra_env=prep.secret_environment())
    job_id, run_dir = submit_held(logs, prep.timestamp, prep.files, cluster_file=prep.cluster.source,
                                  env=prep.secret_environment(), run_name=lambda jid: f"{jid}{prep.run_suffix}")
    try:
        write_files(run_dir, {"metadata.json": json_text(metadata(prep, job_id, "slurm"))})
    except BaseException:
        sbatch.cancel(job_id)
        raise
    sbatch.release(job_id)
    print_submitted(job_id, run_dir)
    return 0


def _resume(args: argparse.Namespace) -> int:
    run_dir = Path(args.resume).resolve()
    meta_path = run_dir / "metadata.json"
    if not meta_path.is_file():
        raise ConfigError("not a run directory (no metadata.json)", file=str(run_dir), key="--resume",
                          hint="pass a directory printed by `srtctl apply` (Logs: ...)")
    meta = json.loads(meta_path.read_text())
    if (run_dir / "sweep.json").is_file():  # a sweep in one allocation
        return resume_allocation(run_dir, meta, args)
    if args.file:
        args.force = _take_new_file(run_dir, args.file, force=args.force, local=meta.get("executor") == "local") \
            or args.force
    return resume(run_dir, meta, resolved_json=run_dir / "resolved.json", force=args.force, local=args.local)


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
