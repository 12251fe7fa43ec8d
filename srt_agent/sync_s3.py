"""S3 access for `srtctl sync`: the boto3 client (standard credential chain, retries, timeouts),
the bucket check, listing a run's objects, and every botocore/boto3 failure translated into a
SyncError that names endpoint and bucket and never contains credentials. boto3 is imported only
when a sync runs."""

from __future__ import annotations

from .errors import SyncError
from .sync_target import SyncOptions, SyncTarget, redact_url

_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken",
               "InvalidToken", "InvalidClientTokenId", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
               "Forbidden", "UnrecognizedClientException"}
_NO_BUCKET_CODES = {"NoSuchBucket", "404", "NotFound"}


def client_error_code(exc: BaseException) -> tuple[str, str]:
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
        code, message = client_error_code(exc)
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
