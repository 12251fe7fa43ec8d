"""Upload run directories to S3-compatible storage (`srtctl sync`, `make sync-to-cloud`).

    report = sync_run(Path("logs/12345_1P_4D_20251122_143052"), cluster.cloud)

Every regular file under the run directory goes to `<prefix><run-dir-name>/<relative path>` in
`cloud.bucket` at `cloud.endpoint_url`. A sync is idempotent and resumable:

- each object carries the sha256 of its content in its metadata (`x-amz-meta-sha256`); a file
  whose remote object has the same size and the same sha256 (or, for single-part uploads, an ETag
  equal to the file's MD5) is skipped;
- objects appear in S3 only once their upload completes, so re-running an interrupted sync
  uploads exactly the files that are missing or changed;
- nothing is ever deleted remotely.

Large files use multipart uploads (boto3 TransferConfig); transient failures are retried with
exponential backoff (botocore "standard" retry mode). Credentials come only from the standard AWS
sources (environment, AWS_PROFILE / shared files, instance roles) and are never printed; every
failure surfaces as a SyncError that names the endpoint and the bucket.

This module plans and runs a sync; the target, options and report are in sync_target.py, the S3
client and the error translation in sync_s3.py (both re-exported here).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SyncError
from .sync_s3 import check_bucket, client_error_code, list_remote, make_client, to_sync_error
from .sync_target import CLOUD_EXAMPLE, SyncOptions, SyncReport, SyncTarget, redact_url, target_from

META_SHA256 = "sha256"
_CHUNK = 1 << 20

FileCallback = Callable[[str, str], None]  # (key, "uploaded" | "skipped" | "would upload")


# --------------------------------------------------------------------------- planning


@dataclass
class LocalFile:
    path: Path
    key: str
    size: int
    sha256: str
    md5: str


def hash_file(path: Path) -> tuple[int, str, str]:
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest(), md5.hexdigest()


def iter_run_files(run_dir: Path) -> list[Path]:
    """Regular files under run_dir, sorted; symlinks are not followed (they may leave the tree)."""
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(run_dir, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_symlink() or not p.is_file():
                continue
            files.append(p)
    return files


def is_unchanged(client, target: SyncTarget, f: LocalFile, remote: tuple[int, str] | None) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    if remote is None or remote[0] != f.size:
        return False
    etag = remote[1]
    if etag and "-" not in etag and etag.lower() == f.md5:
        return True
    try:
        head = client.head_object(Bucket=target.bucket, Key=f.key)
    except ClientError as exc:
        code, _ = client_error_code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            return False
        raise to_sync_error(exc, target, f"checking {f.key}") from None
    except BotoCoreError as exc:
        raise to_sync_error(exc, target, f"checking {f.key}") from None
    return head.get("Metadata", {}).get(META_SHA256) == f.sha256


# --------------------------------------------------------------------------- syncing


class _Progress:
    """A rich progress bar over bytes to upload, or nothing."""

    def __init__(self, enabled: bool) -> None:
        self.bar = None
        self.task = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(binary_units=True),
                                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True),
                                transient=False)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def start_run(self, name: str, total: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task(name, total=max(total, 1))
            if total == 0:
                self.bar.update(self.task, completed=1)

    def advance(self, n: int) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.advance(self.task, n)


def _sync_one(client, target: SyncTarget, run_dir: Path, opts: SyncOptions, progress: _Progress,
              on_file: FileCallback | None) -> SyncReport:
    from boto3.exceptions import S3UploadFailedError
    from boto3.s3.transfer import TransferConfig
    from botocore.exceptions import BotoCoreError, ClientError

    report = SyncReport(runs=[run_dir.name])
    key_prefix = target.key_prefix(run_dir.name)
    remote = list_remote(client, target, key_prefix)

    todo: list[LocalFile] = []
    for path in iter_run_files(run_dir):
        key = key_prefix + path.relative_to(run_dir).as_posix()
        try:
            size, sha, md5 = hash_file(path)
        except FileNotFoundError:
            report.vanished.append(key)
            continue
        f = LocalFile(path, key, size, sha, md5)
        if is_unchanged(client, target, f, remote.get(key)):
            report.skipped.append(key)
            if on_file:
                on_file(key, "skipped")
        else:
            todo.append(f)

    progress.start_run(run_dir.name, sum(f.size for f in todo))
    transfer = TransferConfig(multipart_threshold=opts.multipart_threshold,
                              multipart_chunksize=opts.multipart_chunksize,
                              max_concurrency=opts.max_concurrency, use_threads=opts.max_concurrency > 1)
    for f in todo:
        if opts.dry_run:
            report.uploaded.append(f.key)
            if on_file:
                on_file(f.key, "would upload")
            continue
        extra = {"Metadata": {META_SHA256: f.sha256}}
        ctype, _ = mimetypes.guess_type(f.path.name)
        extra["ContentType"] = ctype or ("text/plain" if f.path.suffix in (".log", ".out", ".err", ".txt")
                                         else "application/octet-stream")
        try:
            client.upload_file(str(f.path), target.bucket, f.key, ExtraArgs=extra, Config=transfer,
                               Callback=progress.advance)
        except FileNotFoundError:
            report.vanished.append(f.key)
            continue
        except (S3UploadFailedError, ClientError, BotoCoreError) as exc:
            raise to_sync_error(exc, target, f"uploading {f.key}") from None
        report.uploaded.append(f.key)
        report.bytes_uploaded += f.size
        if on_file:
            on_file(f.key, "uploaded")
    return report


def sync_runs(run_dirs: list[Path], cloud_cfg: Any, *, options: SyncOptions | None = None, client=None,
              on_file: FileCallback | None = None, on_run: Callable[[SyncReport], None] | None = None) -> SyncReport:
    """Sync several run directories with one client and one progress display."""
    target = cloud_cfg if isinstance(cloud_cfg, SyncTarget) else target_from(cloud_cfg)
    opts = options or SyncOptions()
    for d in run_dirs:
        if not Path(d).is_dir():
            raise SyncError(f"run directory not found: {d}")
    client = client or make_client(target, opts)
    check_bucket(client, target)
    total = SyncReport()
    with _Progress(opts.progress) as progress:
        for d in run_dirs:
            one = _sync_one(client, target, Path(d), opts, progress, on_file)
            total.merge(one)
            if on_run:
                on_run(one)
    return total


def sync_run(run_dir: str | Path, cloud_cfg: Any, *, options: SyncOptions | None = None, client=None,
             on_file: FileCallback | None = None) -> SyncReport:
    """Upload one run directory; what the agent calls at the end of a job."""
    return sync_runs([Path(run_dir)], cloud_cfg, options=options, client=client, on_file=on_file)


def sync_on_finish(run_dir: str | Path, cluster_cfg: Any, log: Callable[[str], None] = print) -> SyncReport | None:
    """For the agent: sync when `cloud.sync_on_finish` is true; a failure is logged, never raised.

    The job's own outcome must not depend on the storage being reachable.
    """
    cloud = getattr(cluster_cfg, "cloud", None)
    if cloud is None or not getattr(cloud, "sync_on_finish", False):
        return None
    try:
        report = sync_run(run_dir, cloud, options=SyncOptions(progress=False))
    except SyncError as exc:
        log(f"cloud sync failed (results stay in {run_dir}; retry with `srtctl sync {Path(run_dir).name}`): {exc}")
        return None
    log(f"cloud sync of {Path(run_dir).name}: {report.summary()}")
    return report


__all__ = [
    "CLOUD_EXAMPLE",
    "META_SHA256",
    "SyncOptions",
    "SyncReport",
    "SyncTarget",
    "check_bucket",
    "make_client",
    "redact_url",
    "sync_on_finish",
    "sync_run",
    "sync_runs",
    "target_from",
    "to_sync_error",
]
