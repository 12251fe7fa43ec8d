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
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import SyncError

META_SHA256 = "sha256"
MiB = 1024 * 1024
_CHUNK = 1 << 20

CLOUD_EXAMPLE = """cloud:
  endpoint_url: "https://s3.example.com"
  bucket: "benchmark-results"
  prefix: "my-team/\""""

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken",
               "InvalidToken", "InvalidClientTokenId", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
               "Forbidden", "UnrecognizedClientException"}
_NO_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


@dataclass(frozen=True)
class SyncTarget:
    bucket: str
    endpoint_url: str | None = None
    prefix: str = ""
    region: str | None = None

    @property
    def where(self) -> str:
        """Endpoint and bucket for messages, with any user:password in the URL removed."""
        return f"{redact_url(self.endpoint_url) if self.endpoint_url else 'AWS S3'} (bucket '{self.bucket}')"

    def key_prefix(self, run_name: str) -> str:
        return f"{self.prefix}{run_name}/"


@dataclass
class SyncOptions:
    max_attempts: int = 5
    multipart_threshold: int = 64 * MiB
    multipart_chunksize: int = 16 * MiB
    max_concurrency: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    progress: bool = False
    dry_run: bool = False


@dataclass
class SyncReport:
    runs: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    vanished: list[str] = field(default_factory=list)  # local files removed while syncing
    bytes_uploaded: int = 0

    def merge(self, other: SyncReport) -> None:
        self.runs += other.runs
        self.uploaded += other.uploaded
        self.skipped += other.skipped
        self.vanished += other.vanished
        self.bytes_uploaded += other.bytes_uploaded

    def summary(self) -> str:
        text = (f"{len(self.uploaded)} file(s) uploaded ({human_bytes(self.bytes_uploaded)}), "
                f"{len(self.skipped)} unchanged")
        if self.vanished:
            text += f", {len(self.vanished)} vanished while syncing"
        return text


FileCallback = Callable[[str, str], None]  # (key, "uploaded" | "skipped" | "would upload")


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return url


def normalize_prefix(prefix: str | None) -> str:
    p = (prefix or "").strip().lstrip("/")
    return p if not p or p.endswith("/") else p + "/"


def target_from(cloud_cfg: Any) -> SyncTarget:
    """A SyncTarget from the cluster file's `cloud` section (pydantic model or plain dict)."""
    if cloud_cfg is None:
        raise SyncError("cloud sync is not configured: srtslurm.yaml has no `cloud` section.\n"
                        f"  fix: add to srtslurm.yaml:\n{_indent(CLOUD_EXAMPLE, 4)}")
    get = cloud_cfg.get if isinstance(cloud_cfg, dict) else (lambda k, d=None: getattr(cloud_cfg, k, d))
    bucket = get("bucket")
    if not bucket:
        raise SyncError("the `cloud` section of srtslurm.yaml has no `bucket`.\n"
                        f"  fix: it should look like:\n{_indent(CLOUD_EXAMPLE, 4)}")
    return SyncTarget(bucket=str(bucket), endpoint_url=get("endpoint_url") or None,
                      prefix=normalize_prefix(get("prefix")), region=get("region") or None)


def _indent(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines())


# --------------------------------------------------------------------------- errors


def _client_error_code(exc: BaseException) -> tuple[str, str]:
    resp = getattr(exc, "response", None) or {}
    err = resp.get("Error", {}) if isinstance(resp, dict) else {}
    return str(err.get("Code", "")), str(err.get("Message", ""))


def to_sync_error(exc: BaseException, target: SyncTarget, action: str) -> SyncError:
    """Translate a botocore/boto3 failure into a SyncError that never contains credentials."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    if isinstance(exc, S3UploadFailedError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, (ClientError, BotoCoreError)):
            return to_sync_error(cause, target, action)
        return SyncError(f"upload to {target.where} failed while {action}: {exc}")
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return SyncError(f"no usable AWS credentials for {target.where}.\n"
                         "  fix: export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE=<name> "
                         "with ~/.aws/credentials")
    if isinstance(exc, ProfileNotFound):
        return SyncError(f"AWS profile not found for {target.where}: {exc}.\n"
                         "  fix: check AWS_PROFILE and ~/.aws/config")
    if isinstance(exc, ClientError):
        code, message = _client_error_code(exc)
        if code in _AUTH_CODES:
            return SyncError(
                f"{target.where} rejected the credentials or denied access ({code}) while {action}.\n"
                "  fix: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) and that this key "
                "may write to the bucket; secrets are never printed")
        if code in _NO_BUCKET_CODES:
            return SyncError(f"bucket '{target.bucket}' does not exist at "
                             f"{redact_url(target.endpoint_url) if target.endpoint_url else 'AWS S3'}.\n"
                             "  fix: create it, or correct cloud.bucket / cloud.endpoint_url in srtslurm.yaml")
        return SyncError(f"{target.where} refused the request while {action}: {code} {message}".rstrip())
    if isinstance(exc, BotoConnectionError):
        return SyncError(f"cannot reach {target.where} while {action} ({type(exc).__name__}).\n"
                         "  fix: check cloud.endpoint_url in srtslurm.yaml and the network")
    if isinstance(exc, BotoCoreError):
        return SyncError(f"S3 client error for {target.where} while {action}: {exc}")
    return SyncError(f"sync to {target.where} failed while {action}: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- client


def make_client(target: SyncTarget, options: SyncOptions | None = None):
    """boto3 S3 client using the standard credential chain, with retries and timeouts."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    opts = options or SyncOptions()
    config = Config(
        retries={"max_attempts": opts.max_attempts, "mode": "standard"},
        connect_timeout=opts.connect_timeout,
        read_timeout=opts.read_timeout,
        s3={"addressing_style": "path"} if target.endpoint_url else {},
        user_agent_extra="srt-slurm-sync",
    )
    try:
        session = boto3.session.Session()
        return session.client("s3", endpoint_url=target.endpoint_url, region_name=target.region, config=config)
    except BotoCoreError as exc:
        raise to_sync_error(exc, target, "creating the S3 client") from None


def check_bucket(client, target: SyncTarget) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.head_bucket(Bucket=target.bucket)
    except (ClientError, BotoCoreError) as exc:
        raise to_sync_error(exc, target, "checking the bucket") from None


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


def list_remote(client, target: SyncTarget, key_prefix: str) -> dict[str, tuple[int, str]]:
    """key -> (size, etag) for every object under key_prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    remote: dict[str, tuple[int, str]] = {}
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=key_prefix):
            for obj in page.get("Contents", []):
                remote[obj["Key"]] = (int(obj["Size"]), str(obj.get("ETag", "")).strip('"'))
    except (ClientError, BotoCoreError) as exc:
        raise to_sync_error(exc, target, f"listing {key_prefix}") from None
    return remote


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
        code, _ = _client_error_code(exc)
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
    "make_client",
    "sync_on_finish",
    "sync_run",
    "sync_runs",
    "target_from",
    "to_sync_error",
]
