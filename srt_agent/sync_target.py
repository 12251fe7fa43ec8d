"""What `srtctl sync` uploads to and how: the target (bucket, endpoint, prefix) from the cluster
file's `cloud` section, the options, and the report of one sync (see sync.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import SyncError

MiB = 1024 * 1024

CLOUD_EXAMPLE = """cloud:
  endpoint_url: "https://s3.example.com"
  bucket: "benchmark-results"
  prefix: "my-team/\""""


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
