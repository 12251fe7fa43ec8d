"""`make setup` binary install against a real HTTP server on 127.0.0.1 serving test archives."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from launcher import setup_cmd

NATS_V, ETCD_V = "9.9.1", "9.9.2"


def fake_exe(label: str) -> bytes:
    return f"#!/bin/sh\necho {label}\n".encode()


def make_targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def nats_members(goarch: str) -> dict[str, bytes]:
    d = f"nats-server-v{NATS_V}-linux-{goarch}"
    return {f"{d}/nats-server": fake_exe(f"nats {goarch}"), f"{d}/README.md": b"readme"}


def etcd_members(goarch: str) -> dict[str, bytes]:
    d = f"etcd-v{ETCD_V}-linux-{goarch}"
    return {f"{d}/etcd": fake_exe(f"etcd {goarch}"), f"{d}/etcdctl": fake_exe(f"etcdctl {goarch}"),
            f"{d}/etcdutl": fake_exe("etcdutl")}


class Site:
    """Release site layout + manifest, served by a ThreadingHTTPServer that logs request paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.archives: dict[tuple[str, str], Path] = {}
        for goarch in ("amd64", "arm64"):
            self.put("nats", goarch, make_targz(nats_members(goarch)))
            self.put("etcd", goarch, make_targz(etcd_members(goarch)))
        self.manifest_path = root / "manifest.json"
        self.write_manifest()

    def archive_path(self, comp: str, goarch: str) -> Path:
        if comp == "nats":
            rel = f"nats-io/nats-server/releases/download/v{NATS_V}/nats-server-v{NATS_V}-linux-{goarch}.tar.gz"
        else:
            rel = f"etcd-io/etcd/releases/download/v{ETCD_V}/etcd-v{ETCD_V}-linux-{goarch}.tar.gz"
        return self.root / "www" / rel

    def put(self, comp: str, goarch: str, data: bytes) -> None:
        p = self.archive_path(comp, goarch)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        self.archives[(comp, goarch)] = p

    def sha(self, comp: str, goarch: str) -> str:
        return hashlib.sha256(self.archives[(comp, goarch)].read_bytes()).hexdigest()

    def write_manifest(self, overrides: dict[tuple[str, str], str | None] | None = None) -> None:
        overrides = overrides or {}
        sums = {(c, g): overrides.get((c, g), self.sha(c, g)) for c in ("nats", "etcd") for g in ("amd64", "arm64")}
        manifest = {
            "default_base_url": "http://127.0.0.1:1",
            "arch_aliases": {"x86_64": "amd64", "aarch64": "arm64"},
            "components": {
                "nats": {
                    "version": NATS_V,
                    "path": "/nats-io/nats-server/releases/download/v{version}/nats-server-v{version}-linux-{goarch}.tar.gz",
                    "binaries": {"nats-server": "nats-server-v{version}-linux-{goarch}/nats-server"},
                    "sha256": {g: sums[("nats", g)] for g in ("amd64", "arm64")},
                    "debian_packages": ["nats-server"],
                },
                "etcd": {
                    "version": ETCD_V,
                    "path": "/etcd-io/etcd/releases/download/v{version}/etcd-v{version}-linux-{goarch}.tar.gz",
                    "binaries": {"etcd": "etcd-v{version}-linux-{goarch}/etcd",
                                 "etcdctl": "etcd-v{version}-linux-{goarch}/etcdctl"},
                    "sha256": {g: sums[("etcd", g)] for g in ("amd64", "arm64")},
                    "debian_packages": ["etcd-server", "etcd-client"],
                },
            },
        }
        self.manifest_path.write_text(json.dumps(manifest))


@pytest.fixture
def site(tmp_path, monkeypatch, free_port):
    for var in ("SRT_RELEASE_BASE_URL", "SRT_BINARIES_MANIFEST", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                "http_proxy", "https_proxy", "all_proxy", "SRTCTL_ACCOUNT", "SRTCTL_PARTITION",
                "SRTCTL_GPUS_PER_NODE", "SRTCTL_TIME_LIMIT", "SRTSLURM_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    s = Site(tmp_path / "site")
    www = str(tmp_path / "site" / "www")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=www, **kw)

        def do_GET(self):
            s.requests.append(self.path)
            super().do_GET()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    s.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    yield s
    server.shutdown()
    server.server_close()


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "checkout"
    r.mkdir()
    return r


def run_setup(root: Path, site: Site, *extra: str, arch: str = "x86_64", base_url: str | None = None) -> int:
    argv = ["--arch", arch, "--root", str(root), "--manifest", str(site.manifest_path),
            "--release-base-url", base_url or site.base_url, "--yes", "--download-timeout", "5", *extra]
    return setup_cmd.main(argv)


@pytest.fixture
def unreachable_url(free_ports) -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"  # free, and nothing listens there


def leftovers(bin_dir: Path) -> list[str]:
    return [p.name for p in bin_dir.iterdir() if p.name.startswith(".setup-") or ".tmp" in p.name] \
        if bin_dir.exists() else []


def test_download_verify_install_and_write_cluster_file(site, root, capsys):
    assert run_setup(root, site) == 0
    out = capsys.readouterr().out
    assert out.count("(sha256 verified)") == 2
    bin_dir = root / "bin"
    for name, label in (("nats-server", "nats amd64"), ("etcd", "etcd amd64"), ("etcdctl", "etcdctl amd64")):
        exe = bin_dir / name
        assert exe.stat().st_mode & 0o111, f"{name} not executable"
        assert subprocess.run([str(exe)], check=False, capture_output=True, text=True).stdout.strip() == label
    assert not (bin_dir / "etcdutl").exists(), "only the named binaries are installed"
    record = json.loads((bin_dir / ".srt-binaries.json").read_text())
    assert record["nats"]["source"] == "download" and record["nats"]["verified"] is True
    assert record["etcd"]["sha256"] == site.sha("etcd", "amd64")
    assert sorted(site.requests) == sorted([
        f"/nats-io/nats-server/releases/download/v{NATS_V}/nats-server-v{NATS_V}-linux-amd64.tar.gz",
        f"/etcd-io/etcd/releases/download/v{ETCD_V}/etcd-v{ETCD_V}-linux-amd64.tar.gz"])
    assert (root / "srtslurm.yaml").is_file()
    assert leftovers(bin_dir) == []


def test_second_run_skips_verified_install_without_network(site, root, capsys):
    assert run_setup(root, site) == 0
    n = len(site.requests)
    assert run_setup(root, site, "--force") == 0
    assert len(site.requests) == n, "an already-verified install must not download again"
    assert capsys.readouterr().out.count("already installed") == 2
    assert run_setup(root, site, "--force", "--reinstall") == 0
    assert len(site.requests) == n + 2


def test_aarch64_fetches_arm64_archives(site, root):
    assert run_setup(root, site, arch="aarch64") == 0
    assert all("linux-arm64.tar.gz" in p for p in site.requests) and len(site.requests) == 2
    out = subprocess.run([str(root / "bin" / "etcdctl")], check=False, capture_output=True, text=True).stdout
    assert out.strip() == "etcdctl arm64"


def test_checksum_mismatch_is_an_error_and_installs_nothing(site, root, capsys):
    site.write_manifest({("etcd", "amd64"): "0" * 64})
    assert run_setup(root, site) == 1
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "0" * 64 in err and site.sha("etcd", "amd64") in err
    bin_dir = root / "bin"
    assert not (bin_dir / "etcd").exists() and not (bin_dir / "etcdctl").exists()
    assert leftovers(bin_dir) == []
    assert (root / "srtslurm.yaml").is_file(), "the cluster file is written before the fetch"
    assert "retry only the binaries: python -m launcher.setup_cmd --binaries-only" in err


def test_corrupt_archive_is_an_error_and_keeps_previous_binaries(site, root, capsys):
    bin_dir = root / "bin"
    bin_dir.mkdir()
    (bin_dir / "nats-server").write_text("previous install")
    good = site.archives[("nats", "amd64")].read_bytes()
    site.put("nats", "amd64", good[: len(good) // 2])  # truncated gzip stream
    site.write_manifest()  # checksum matches the corrupt bytes: only extraction can catch it
    assert run_setup(root, site) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err and "nothing was installed" in err
    assert (bin_dir / "nats-server").read_text() == "previous install"
    assert leftovers(bin_dir) == []


def test_archive_without_expected_member_is_an_error(site, root, capsys):
    site.put("etcd", "amd64", make_targz({f"etcd-v{ETCD_V}-linux-amd64/etcd": fake_exe("etcd")}))
    site.write_manifest()
    assert run_setup(root, site) == 1
    assert "does not contain" in capsys.readouterr().err
    assert not (root / "bin" / "etcd").exists(), "etcd alone would be half an install"


def test_archive_paths_are_never_trusted(site, root, tmp_path):
    members = nats_members("amd64")
    members["../../../escaped"] = b"x"
    members["/tmp/absolute-escape-srt"] = b"x"
    site.put("nats", "amd64", make_targz(members))
    site.write_manifest()
    assert run_setup(root, site) == 0
    assert not (tmp_path / "escaped").exists() and not (root / "escaped").exists()
    assert not Path("/tmp/absolute-escape-srt").exists()


def test_missing_checksum_installs_with_a_clear_warning(site, root, capsys):
    site.write_manifest({("nats", "amd64"): None})
    assert run_setup(root, site) == 0
    out = capsys.readouterr().out
    assert "WARNING: no sha256 pinned for nats" in out and "NOT verified" in out
    assert "not checksum-verified: nats" in out
    assert json.loads((root / "bin" / ".srt-binaries.json").read_text())["nats"]["verified"] is False


def fake_path_dir(tmp_path: Path, names: list[str]) -> Path:
    d = tmp_path / "usr-bin"
    d.mkdir()
    for n in names:
        (d / n).write_bytes(fake_exe(f"debian {n}"))
        (d / n).chmod(0o755)
    return d


def test_unreachable_site_falls_back_to_binaries_on_path(site, root, tmp_path, monkeypatch, capsys,
                                                          unreachable_url):
    monkeypatch.setenv("PATH", str(fake_path_dir(tmp_path, ["nats-server", "etcd", "etcdctl"])))
    assert run_setup(root, site, base_url=unreachable_url) == 0
    out = capsys.readouterr().out
    assert out.count("FELL BACK to binaries already on PATH") == 2
    assert "NOT checksum-verified" in out
    for n in ("nats-server", "etcd", "etcdctl"):
        r = subprocess.run([str(root / "bin" / n)], check=False, capture_output=True, text=True)
        assert r.stdout.strip() == f"debian {n}"
    assert json.loads((root / "bin" / ".srt-binaries.json").read_text())["etcd"]["source"] == "path"
    assert site.requests == []


def test_http_error_also_falls_back(site, root, tmp_path, monkeypatch, capsys):
    site.archives[("nats", "amd64")].unlink()  # 404
    monkeypatch.setenv("PATH", str(fake_path_dir(tmp_path, ["nats-server"])))
    assert run_setup(root, site) == 0
    out = capsys.readouterr().out
    assert "HTTP 404" in out and "FELL BACK" in out
    assert json.loads((root / "bin" / ".srt-binaries.json").read_text())["etcd"]["source"] == "download"


def test_unreachable_and_nothing_on_path_says_how_to_fix(site, root, tmp_path, monkeypatch, capsys,
                                                          unreachable_url):
    monkeypatch.setenv("PATH", str(fake_path_dir(tmp_path, [])))
    url = unreachable_url
    assert run_setup(root, site, base_url=url) == 1
    err = capsys.readouterr().err
    assert "unreachable" in err and "--nats-archive FILE" in err and "nats-server" in err
    assert f"{root / 'srtslurm.yaml'} is written; your settings are kept." in err
    assert ("retry only the binaries: python -m launcher.setup_cmd --binaries-only --arch x86_64 "
            f"--root {root} --manifest {site.manifest_path} --release-base-url {url}") in err
    assert (root / "srtslurm.yaml").is_file(), "the answers are written before anything is fetched"


def test_failed_fetch_keeps_the_answers_and_the_retry_fetches_only_the_binaries(site, root, tmp_path,
                                                                                unreachable_url):
    """A real `make setup` process: piped answers, the release site down and nothing on PATH."""
    import os
    import re
    import shlex
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SRTCTL_")}
    env["PATH"] = f"{fake_path_dir(tmp_path, [])}"
    argv = [sys.executable, "-m", "launcher.setup_cmd", "--arch", "x86_64", "--root", str(root),
            "--manifest", str(site.manifest_path), "--release-base-url", unreachable_url, "--download-timeout", "5"]
    res = subprocess.run(argv, input="my-acct\ngpu\n8\n02:00:00\n", capture_output=True, text=True, timeout=60,
                         env=env, check=False)
    assert res.returncode == 1, res.stdout + res.stderr
    out = res.stdout
    assert out.index("SLURM account [restricted]: my-acct") < out.index(f"Wrote {root / 'srtslurm.yaml'}") \
        < out.index("nats 9.9.1: downloading"), "prompts and srtslurm.yaml come before the fetch"
    written = (root / "srtslurm.yaml").read_text()
    assert "my-acct" in written and "gpu" in written
    retry = re.search(r"retry only the binaries: (.+?)  \(with archives fetched elsewhere, add (.+)\)", res.stderr)
    assert retry, res.stderr
    # the retry as printed, with the archives the user fetched elsewhere: no prompt, the file untouched
    cmd = shlex.split(retry.group(1))
    assert cmd[:3] == ["python", "-m", "launcher.setup_cmd"]
    cmd += ["--nats-archive", str(site.archives[("nats", "amd64")]),
            "--etcd-archive", str(site.archives[("etcd", "amd64")])]
    res = subprocess.run([sys.executable, *cmd[1:]], input="other-acct\n", capture_output=True, text=True,
                         timeout=60, env=env, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Cluster settings" not in res.stdout and "SLURM account" not in res.stdout
    assert (root / "srtslurm.yaml").read_text() == written
    assert res.stdout.count("from local archive") == 2 and (root / "bin" / "etcd").is_file()


def test_retry_without_custom_options_is_make_setup_binaries(site, root, tmp_path, monkeypatch, capsys):
    import argparse

    args = argparse.Namespace(root=None, bin_dir=None, manifest=None, release_base_url=None)
    text = setup_cmd.retry_command(args, "aarch64")
    assert text.startswith("make setup-binaries ARCH=aarch64  (with archives fetched elsewhere: "
                           "python -m launcher.setup_cmd --binaries-only --arch aarch64 --nats-archive FILE")


def test_binaries_only_and_skip_binaries_exclude_each_other(site, root, capsys):
    assert run_setup(root, site, "--binaries-only", "--skip-binaries") == 1
    assert "exclude each other" in capsys.readouterr().err and not (root / "srtslurm.yaml").exists()


def test_local_archives_install_without_network(site, root, capsys, unreachable_url):
    rc = run_setup(root, site, "--nats-archive", str(site.archives[("nats", "amd64")]),
                   "--etcd-archive", str(site.archives[("etcd", "amd64")]), base_url=unreachable_url)
    assert rc == 0
    assert capsys.readouterr().out.count("from local archive") == 2
    assert site.requests == []
    assert json.loads((root / "bin" / ".srt-binaries.json").read_text())["nats"]["source"] == "local-archive"


def test_local_archive_with_wrong_checksum_is_rejected(site, root, capsys):
    rc = run_setup(root, site, "--nats-archive", str(site.archives[("nats", "arm64")]))  # wrong arch
    assert rc == 1
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (root / "bin" / "nats-server").exists()


def test_release_base_url_env_is_honoured(site, root, monkeypatch):
    monkeypatch.setenv("SRT_RELEASE_BASE_URL", site.base_url)
    argv = ["--arch", "x86_64", "--root", str(root), "--manifest", str(site.manifest_path), "--yes"]
    assert setup_cmd.main(argv) == 0
    assert len(site.requests) == 2


def test_shipped_manifest_pins_both_arches_with_sha256():
    from launcher.binaries import load_manifest

    m = load_manifest()
    assert set(m.components) == {"nats", "etcd"}
    assert m.default_base_url == "https://github.com"
    for comp in m.components.values():
        for goarch in ("amd64", "arm64"):
            sha = comp.pinned_sha256(goarch)
            assert sha and len(sha) == 64 and int(sha, 16) >= 0
            assert comp.url(m.default_base_url, goarch).startswith("https://github.com/")
    assert m.goarch("aarch64") == "arm64" and m.goarch("x86_64") == "amd64"
