"""Cloud sync against a real S3 server on 127.0.0.1: moto in server mode.

At start an IAM user, an access key and an s3:* policy are created. Tests marked with the
`enforce_auth` fixture switch moto's authentication on (`/moto-api/reset-auth 0`): from then on
every request needs a valid signature from that key, so wrong key ids and wrong secrets are
rejected as on real S3. The other tests run with authentication off, because moto 5.2's signature
check wrongly rejects valid requests whose query or key contains '/' or non-ASCII characters
(e.g. ListObjectsV2 with Prefix='team-a/run/'); real S3 accepts those.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from srt_agent.errors import SyncError
from srt_agent.sync import (
    META_SHA256,
    SyncOptions,
    make_client,
    sync_on_finish,
    sync_run,
    sync_runs,
    target_from,
)

DEV_PORTS = range(39000, 39200)
SECRET_MARKER = "SeCrEt-must-never-appear-"


def free_port() -> int:
    for port in reversed(DEV_PORTS):  # the setup tests take ports from the bottom of the range
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 39000-39199")


def aws_env(tmp: Path, key_id: str, secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=key_id, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp / "no-aws-config"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp / "no-aws-credentials"))
    return env


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on loopback with auth enforced; yields endpoint + a valid key pair."""
    tmp = tmp_path_factory.mktemp("moto")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = aws_env(tmp, "bootstrap", "bootstrap")
    with open(tmp / "moto.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start: " + (tmp / "moto.log").read_text())
                time.sleep(0.1)
        import boto3

        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="srt-sync")
        iam.put_user_policy(UserName="srt-sync", PolicyName="s3-all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
        key = iam.create_access_key(UserName="srt-sync")["AccessKey"]
        yield {"endpoint": endpoint, "key_id": key["AccessKeyId"], "secret": key["SecretAccessKey"], "tmp": tmp}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def set_auth(endpoint: str, unauthenticated_requests: str) -> None:
    r = httpx.post(f"{endpoint}/moto-api/reset-auth", content=unauthenticated_requests.encode(), timeout=5)
    assert r.status_code == 200, r.text


@pytest.fixture
def enforce_auth(s3, bucket):
    """Every request from now on must be signed with the IAM key (bucket is created before)."""
    set_auth(s3["endpoint"], "0")
    yield
    set_auth(s3["endpoint"], "inf")


@pytest.fixture
def creds(s3, tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(k)
    for k, v in aws_env(tmp_path, s3["key_id"], s3["secret"]).items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    return s3


@pytest.fixture
def bucket(creds):
    name = f"srt-{uuid.uuid4().hex[:12]}"
    client = make_client(target_from({"endpoint_url": creds["endpoint"], "bucket": name}))
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def cloud(creds, bucket):
    return {"endpoint_url": creds["endpoint"], "bucket": bucket, "prefix": "team-a/"}


def make_run(logs: Path, name: str = "12345_1P_4D_20251122_143052", n_logs: int = 3) -> Path:
    run = logs / name
    (run / "logs").mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"phase": "done"}))
    for i in range(n_logs):
        (run / "logs" / f"worker_{i}.out").write_text(f"log line {i}\n" * (i + 1))
    (run / "empty.txt").write_bytes(b"")
    (run / "résumé notes.md").write_text("unicode name")
    return run


def objects(cloud: dict) -> dict[str, bytes]:
    client = make_client(target_from(cloud))
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=cloud["bucket"]):
        for obj in page.get("Contents", []):
            out[obj["Key"]] = client.get_object(Bucket=cloud["bucket"], Key=obj["Key"])["Body"].read()
    return out


class PutCounter:
    """Counts PutObject / CreateMultipartUpload calls a client really makes."""

    def __init__(self, client) -> None:
        self.calls: list[str] = []
        client.meta.events.register("before-call.s3.PutObject", lambda **kw: self.calls.append("put"))
        client.meta.events.register("before-call.s3.CreateMultipartUpload", lambda **kw: self.calls.append("mpu"))


def test_upload_then_second_sync_uploads_nothing(cloud, tmp_path):
    run = make_run(tmp_path / "logs")
    report = sync_run(run, cloud)
    prefix = f"team-a/{run.name}/"
    expected = {prefix + p.relative_to(run).as_posix(): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert len(expected) == 6
    assert objects(cloud) == expected
    assert sorted(report.uploaded) == sorted(expected) and report.skipped == []
    assert report.bytes_uploaded == sum(len(v) for v in expected.values())

    client = make_client(target_from(cloud))
    head = client.head_object(Bucket=cloud["bucket"], Key=prefix + "status.json")
    assert head["Metadata"][META_SHA256] == __import__("hashlib").sha256((run / "status.json").read_bytes()).hexdigest()

    counter = PutCounter(client)
    again = sync_run(run, cloud, client=client)
    assert again.uploaded == [] and sorted(again.skipped) == sorted(expected)
    assert counter.calls == [], "an unchanged run must not be uploaded again"


def test_changed_files_are_uploaded_again(cloud, tmp_path):
    run = make_run(tmp_path / "logs")
    sync_run(run, cloud)
    (run / "status.json").write_text(json.dumps({"phase": "DONE"}))  # same size, new content
    (run / "logs" / "worker_0.out").write_text("longer content now\n")
    (run / "logs" / "new.err").write_text("new file")
    client = make_client(target_from(cloud))
    counter = PutCounter(client)
    report = sync_run(run, cloud, client=client)
    prefix = f"team-a/{run.name}/"
    assert sorted(report.uploaded) == sorted(prefix + k for k in ("status.json", "logs/worker_0.out", "logs/new.err"))
    assert len(counter.calls) == 3
    assert objects(cloud)[prefix + "status.json"] == (run / "status.json").read_bytes()


def test_large_files_use_multipart_and_are_still_skipped_when_unchanged(cloud, tmp_path):
    run = tmp_path / "logs" / "777_big"
    run.mkdir(parents=True)
    (run / "trace.bin").write_bytes(os.urandom(11 * 1024 * 1024))
    opts = SyncOptions(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    client = make_client(target_from(cloud), opts)
    counter = PutCounter(client)
    report = sync_run(run, cloud, options=opts, client=client)
    assert report.uploaded == [f"team-a/{run.name}/trace.bin"] and counter.calls == ["mpu"]
    head = client.head_object(Bucket=cloud["bucket"], Key=report.uploaded[0])
    assert "-" in head["ETag"], "multipart ETag is not an MD5, so the sha256 metadata must decide"
    assert head["ContentLength"] == 11 * 1024 * 1024
    again = sync_run(run, cloud, options=opts, client=client)
    assert again.uploaded == [] and counter.calls == ["mpu"]


def test_interrupted_sync_resumes_with_only_the_rest(cloud, tmp_path):
    run = make_run(tmp_path / "logs", n_logs=5)  # 8 files

    class Boom(Exception):
        pass

    done: list[str] = []

    def crash_after_three(key: str, action: str) -> None:
        done.append(key)
        if len(done) == 3:
            raise Boom

    with pytest.raises(Boom):
        sync_run(run, cloud, on_file=crash_after_three)
    assert len(objects(cloud)) == 3
    report = sync_run(run, cloud)
    assert sorted(report.skipped) == sorted(done)
    assert len(report.uploaded) == 5 and not set(report.uploaded) & set(done)
    assert len(objects(cloud)) == 8


def test_remote_objects_are_never_deleted(cloud, tmp_path):
    run = make_run(tmp_path / "logs")
    client = make_client(target_from(cloud))
    client.put_object(Bucket=cloud["bucket"], Key=f"team-a/{run.name}/only-remote.txt", Body=b"keep me")
    sync_run(run, cloud)
    (run / "empty.txt").unlink()
    sync_run(run, cloud)
    remote = objects(cloud)
    assert remote[f"team-a/{run.name}/only-remote.txt"] == b"keep me"
    assert f"team-a/{run.name}/empty.txt" in remote


def test_several_runs_and_an_empty_prefix(creds, bucket, tmp_path):
    logs = tmp_path / "logs"
    a, b = make_run(logs, "1_a"), make_run(logs, "2_b")
    cloud = {"endpoint_url": creds["endpoint"], "bucket": bucket}
    report = sync_runs([a, b], cloud)
    assert report.runs == ["1_a", "2_b"] and len(report.uploaded) == 12
    assert all(k.startswith(("1_a/", "2_b/")) for k in objects(cloud))


def test_wrong_access_key_is_a_clear_sync_error(cloud, enforce_auth, tmp_path, monkeypatch):
    run = make_run(tmp_path / "logs")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_MARKER + "1")
    with pytest.raises(SyncError) as err:
        sync_run(run, cloud, options=SyncOptions(max_attempts=1))
    msg = str(err.value)
    assert "rejected the credentials" in msg and cloud["endpoint_url"] in msg and cloud["bucket"] in msg
    assert SECRET_MARKER not in msg


def test_auth_is_really_enforced_and_the_right_key_passes(cloud, enforce_auth):
    from srt_agent.sync import check_bucket

    target = target_from(cloud)
    check_bucket(make_client(target, SyncOptions(max_attempts=1)), target)  # valid signature: accepted


def test_wrong_secret_is_a_clear_sync_error(cloud, creds, enforce_auth, tmp_path, monkeypatch):
    run = make_run(tmp_path / "logs")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_MARKER + "2")
    with pytest.raises(SyncError) as err:
        sync_run(run, cloud, options=SyncOptions(max_attempts=1))
    assert "rejected the credentials" in str(err.value) and SECRET_MARKER not in str(err.value)


def test_missing_bucket_and_unreachable_endpoint(creds, tmp_path):
    run = make_run(tmp_path / "logs")
    with pytest.raises(SyncError, match="bucket 'no-such-bucket-srt' does not exist"):
        sync_run(run, {"endpoint_url": creds["endpoint"], "bucket": "no-such-bucket-srt"})
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(SyncError, match="cannot reach") as err:
        sync_run(run, {"endpoint_url": dead, "bucket": "x-bucket"}, options=SyncOptions(max_attempts=1))
    assert dead in str(err.value) and time.monotonic() - t0 < 10


def test_no_credentials_at_all(cloud, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(SyncError, match="no usable AWS credentials"):
        sync_run(make_run(tmp_path / "logs"), cloud, options=SyncOptions(max_attempts=1))


def test_missing_cloud_section_says_what_to_add(tmp_path):
    with pytest.raises(SyncError) as err:
        sync_run(make_run(tmp_path / "logs"), None)
    assert "no `cloud` section" in str(err.value) and 'endpoint_url: "https://s3.example.com"' in str(err.value)


def test_sync_on_finish_follows_the_cluster_flag(cloud, tmp_path):
    from srt_agent.cluster_config import ClusterConfig

    run = make_run(tmp_path / "logs")
    lines: list[str] = []
    off = ClusterConfig(cloud={**cloud, "sync_on_finish": False})
    assert sync_on_finish(run, off, log=lines.append) is None and objects(cloud) == {}
    on = ClusterConfig(cloud={**cloud, "sync_on_finish": True})
    report = sync_on_finish(run, on, log=lines.append)
    assert report is not None and len(report.uploaded) == 6
    broken = ClusterConfig(cloud={**cloud, "bucket": "no-such-bucket-srt", "sync_on_finish": True})
    assert sync_on_finish(run, broken, log=lines.append) is None
    assert "cloud sync failed" in lines[-1] and "srtctl sync" in lines[-1]


# --------------------------------------------------------------------------- the CLI, as a process


def write_cluster_file(path: Path, logs: Path, cloud: dict | None) -> Path:
    text = f'logs_dir: "{logs}"\n'
    if cloud:
        text += "cloud:\n" + "".join(f'  {k}: "{v}"\n' for k, v in cloud.items())
    path.write_text(text)
    return path


def cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launcher.cli", "sync", *args], env=env, cwd=cwd,
                          check=False, capture_output=True, text=True, timeout=120)


def test_cli_all_runs_idempotent_and_never_prints_the_secret(cloud, creds, tmp_path):
    logs = tmp_path / "logs"
    make_run(logs, "100_1P_1D_20250101_000000")
    make_run(logs, "101_1P_1D_20250101_000001")
    cfg = write_cluster_file(tmp_path / "srtslurm.yaml", logs, cloud)
    env = aws_env(tmp_path, creds["key_id"], creds["secret"])
    r = cli(["--all", "--cluster-file", str(cfg), "-v"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "done: 2 run(s), 12 file(s) uploaded, 0 unchanged" in r.stdout
    assert "uploaded: team-a/100_1P_1D_20250101_000000/status.json" in r.stdout
    assert creds["secret"] not in r.stdout + r.stderr
    r = cli(["--all", "--cluster-file", str(cfg)], env, tmp_path)
    assert r.returncode == 0 and "done: 2 run(s), 0 file(s) uploaded, 12 unchanged" in r.stdout


def test_cli_killed_midway_then_rerun_uploads_only_the_rest(cloud, creds, tmp_path):
    logs = tmp_path / "logs"
    run = logs / "900_1P_1D_20250101_000000"
    run.mkdir(parents=True)
    for i in range(6):
        (run / f"part{i}.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    cfg = write_cluster_file(tmp_path / "srtslurm.yaml", logs, cloud)
    env = aws_env(tmp_path, creds["key_id"], creds["secret"])
    proc = subprocess.Popen([sys.executable, "-m", "launcher.cli", "sync", "--all", "--cluster-file", str(cfg), "-v"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if "uploaded: " in line:
                proc.kill()  # SIGKILL right after the first completed file
                break
    finally:
        proc.kill()
        proc.wait(timeout=10)
    remote = objects(cloud)
    assert 1 <= len(remote) < 6, "killed after the first file and before the last"
    for key, body in remote.items():  # whatever is there is complete, never a partial object
        assert body == (run / key.rsplit("/", 1)[1]).read_bytes()
    r = cli(["--all", "--cluster-file", str(cfg)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{6 - len(remote)} file(s) uploaded" in r.stdout and f"{len(remote)} unchanged" in r.stdout
    assert len(objects(cloud)) == 6


def test_cli_wrong_credentials_exit_1_without_traceback_or_secret(cloud, creds, enforce_auth, tmp_path):
    logs = tmp_path / "logs"
    make_run(logs, "100_x")
    cfg = write_cluster_file(tmp_path / "srtslurm.yaml", logs, cloud)
    secret = SECRET_MARKER + uuid.uuid4().hex
    env = aws_env(tmp_path, creds["key_id"], secret)
    r = cli(["100", "--cluster-file", str(cfg), "--max-attempts", "1"], env, tmp_path)
    assert r.returncode == 1
    assert "rejected the credentials" in r.stderr and cloud["bucket"] in r.stderr and cloud["endpoint_url"] in r.stderr
    assert "Traceback" not in r.stderr
    assert secret not in r.stdout + r.stderr


def test_cli_run_id_by_job_id_and_dry_run(cloud, creds, tmp_path):
    logs = tmp_path / "logs"
    make_run(logs, "4242_1P_2D_20250101_000000")
    make_run(logs, "4243_1P_2D_20250101_000000")
    cfg = write_cluster_file(tmp_path / "srtslurm.yaml", logs, cloud)
    env = aws_env(tmp_path, creds["key_id"], creds["secret"])
    r = cli(["4242", "--cluster-file", str(cfg), "--dry-run"], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "would upload: team-a/4242_1P_2D_20250101_000000/status.json" in r.stdout
    assert objects(cloud) == {}
    r = cli(["4242", "--cluster-file", str(cfg)], env, tmp_path)
    assert r.returncode == 0, r.stderr
    assert {k.split("/")[1] for k in objects(cloud)} == {"4242_1P_2D_20250101_000000"}
    r = cli(["424", "--cluster-file", str(cfg)], env, tmp_path)
    assert r.returncode == 1 and "no run '424'" in r.stderr


def test_cli_without_cloud_section_says_what_to_add(tmp_path):
    logs = tmp_path / "logs"
    make_run(logs, "1_a")
    cfg = write_cluster_file(tmp_path / "srtslurm.yaml", logs, None)
    r = cli(["--all", "--cluster-file", str(cfg)], aws_env(tmp_path, "k", "s"), tmp_path)
    assert r.returncode == 2
    assert "no `cloud` section" in r.stderr and "bucket:" in r.stderr and "srtslurm.yaml" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_needs_run_id_or_all(tmp_path):
    r = cli([], aws_env(tmp_path, "k", "s"), tmp_path)
    assert r.returncode == 2 and "RUN_ID or --all" in r.stderr
