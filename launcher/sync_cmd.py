"""`srtctl sync [RUN_ID] | --all`: upload run directories to the cluster file's `cloud` storage.

`make sync-run RUN_ID=<run_id>` and `make sync-to-cloud` call this. RUN_ID is a run directory name
(`12345_1P_4D_20251122_143052`), its SLURM job id (`12345`), or a path to a run directory.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srt_agent.cluster_config import find_cluster_file, load_cluster_config
from srt_agent.errors import ConfigError, SrtError, SyncError
from srt_agent.rundir import logs_dir as default_logs_dir
from srt_agent.sync import CLOUD_EXAMPLE, SyncOptions, SyncReport, redact_url, sync_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", metavar="RUN_ID",
                        help="run directory name, SLURM job id, or path of a run directory")
    parser.add_argument("--all", action="store_true", help="sync every run directory in the logs directory")
    parser.add_argument("--logs-dir", help="where run directories are (default: logs_dir from srtslurm.yaml, else ./logs)")
    parser.add_argument("--cluster-file", help="srtslurm.yaml to read `cloud` from (default: $SRTSLURM_CONFIG, "
                                               "./srtslurm.yaml, <srtctl_root>/srtslurm.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--max-attempts", type=int, default=5, help="attempts per request, with backoff (default: 5)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every uploaded file")


def _cluster(path: str | None):
    p = Path(path) if path else find_cluster_file()
    if p is None:
        raise ConfigError("no srtslurm.yaml found (looked at $SRTSLURM_CONFIG, ./srtslurm.yaml, <srtctl_root>)",
                          hint="run `make setup`, then add a `cloud` section:\n" + CLOUD_EXAMPLE)
    cfg = load_cluster_config(p)
    if cfg.cloud is None:
        raise ConfigError("no `cloud` section: cloud sync is not configured", file=str(p), key="cloud",
                          hint="add to srtslurm.yaml:\n" + CLOUD_EXAMPLE)
    return cfg


def resolve_run_dirs(run_id: str | None, all_runs: bool, logs: Path) -> list[Path]:
    if all_runs:
        if not logs.is_dir():
            raise SyncError(f"no logs directory at {logs}; pass --logs-dir")
        return sorted(d for d in logs.iterdir() if d.is_dir() and not d.name.startswith("."))
    assert run_id is not None
    as_path = Path(run_id)
    if ("/" in run_id or run_id.startswith(".")) and as_path.is_dir():
        return [as_path.resolve()]
    if not logs.is_dir():
        raise SyncError(f"no logs directory at {logs}; pass --logs-dir or a path to the run directory")
    exact = logs / run_id
    if exact.is_dir():
        return [exact]
    matches = sorted(d for d in logs.iterdir() if d.is_dir() and d.name.startswith(f"{run_id}_"))
    if len(matches) == 1:
        return matches
    if matches:
        names = ", ".join(d.name for d in matches)
        raise SyncError(f"RUN_ID '{run_id}' matches several runs in {logs}: {names}; give the full name")
    recent = sorted((d.name for d in logs.iterdir() if d.is_dir() and not d.name.startswith(".")), reverse=True)[:5]
    hint = f" (recent: {', '.join(recent)})" if recent else ""
    raise SyncError(f"no run '{run_id}' in {logs}{hint}")


def run(args: argparse.Namespace) -> int:
    if bool(args.run_id) == bool(args.all):
        print("error: give a RUN_ID or --all (not both)", file=sys.stderr)
        return 2
    cluster = _cluster(args.cluster_file)
    logs = Path(args.logs_dir).resolve() if args.logs_dir else default_logs_dir(cluster)
    run_dirs = resolve_run_dirs(args.run_id, args.all, logs)
    if not run_dirs:
        print(f"nothing to sync: no run directories in {logs}")
        return 0

    cloud = cluster.cloud
    options = SyncOptions(max_attempts=max(1, args.max_attempts), dry_run=args.dry_run,
                          progress=not args.no_progress and sys.stderr.isatty())
    where = f"{redact_url(cloud.endpoint_url) if cloud.endpoint_url else 'AWS S3'} bucket '{cloud.bucket}'"
    print(f"syncing {len(run_dirs)} run(s) from {logs} to {where}{' (dry run)' if args.dry_run else ''}",
          flush=True)

    done = SyncReport()

    def on_file(key: str, action: str) -> None:
        if args.verbose or (args.dry_run and action != "skipped"):
            print(f"  {action}: {key}", flush=True)

    def on_run(r: SyncReport) -> None:
        done.merge(r)
        print(f"{r.runs[0]}: {r.summary()}", flush=True)

    try:
        total = sync_runs(run_dirs, cloud, options=options, on_file=on_file, on_run=on_run)
    except KeyboardInterrupt:
        print(f"\ninterrupted after {len(done.runs)} complete run(s); completed uploads are kept. "
              "Run the same command again to upload the rest.", file=sys.stderr)
        return 130
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"done: {len(total.runs)} run(s), {len(total.uploaded)} file(s) {verb}, {len(total.skipped)} unchanged"
          + (f", {len(total.vanished)} vanished" if total.vanished else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="srtctl sync", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except SrtError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
