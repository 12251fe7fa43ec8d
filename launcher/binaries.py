"""Fetch, verify and install the NATS and etcd binaries that every job starts.

The pinned versions and archive checksums live in `binaries.json` next to this file. For each
component, the first source that works wins:

1. a local archive the user passed (`--nats-archive` / `--etcd-archive`), verified like a download;
2. the official release archive, downloaded from `<base_url><path>` (base URL overridable with
   `--release-base-url` or `$SRT_RELEASE_BASE_URL`), then verified against the pinned sha256;
3. only when the site cannot be reached: a binary already on PATH (e.g. Debian's `nats-server`,
   `etcd`, `etcdctl`), copied into `bin/` and reported as unverified.

A checksum mismatch or a corrupt archive is an error, never a reason to fall back. Installs are
atomic per component: everything is downloaded and extracted into a temporary directory inside
`bin/`, and only then renamed into place, so a failure leaves the previous state untouched.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from srt_agent.atomic import write_text_atomic
from srt_agent.errors import SetupError

MANIFEST_PATH = Path(__file__).with_name("binaries.json")
BASE_URL_ENV = "SRT_RELEASE_BASE_URL"
RECORD_NAME = ".srt-binaries.json"
_CHUNK = 1 << 16

Say = Callable[[str], None]


@dataclass(frozen=True)
class Component:
    """One release archive (e.g. etcd) and the executables taken out of it."""

    name: str
    version: str
    path: str
    binaries: dict[str, str]
    sha256: dict[str, str | None]
    debian_packages: tuple[str, ...] = ()

    def url(self, base_url: str, goarch: str) -> str:
        return base_url.rstrip("/") + self.path.format(version=self.version, goarch=goarch)

    def archive_name(self, goarch: str) -> str:
        return self.path.format(version=self.version, goarch=goarch).rsplit("/", 1)[-1]

    def members(self, goarch: str) -> dict[str, str]:
        """Installed name -> path of the file inside the archive."""
        return {name: tpl.format(version=self.version, goarch=goarch) for name, tpl in self.binaries.items()}

    def pinned_sha256(self, goarch: str) -> str | None:
        value = self.sha256.get(goarch)
        return value.lower() if value else None


@dataclass(frozen=True)
class Manifest:
    default_base_url: str
    arch_aliases: dict[str, str]
    components: dict[str, Component]

    def goarch(self, arch: str) -> str:
        try:
            return self.arch_aliases[arch]
        except KeyError:
            known = ", ".join(sorted(self.arch_aliases))
            raise SetupError(f"unknown architecture '{arch}'; use one of: {known}") from None


@dataclass
class InstallResult:
    component: str
    source: str  # "download", "local-archive", "path", "already-installed"
    version: str | None
    verified: bool
    paths: list[Path] = field(default_factory=list)
    sha256: str | None = None
    note: str = ""


class Unreachable(Exception):
    """The release site could not be reached (network error or HTTP error status)."""


def load_manifest(path: str | Path | None = None) -> Manifest:
    p = Path(path) if path else MANIFEST_PATH
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise SetupError(f"cannot read binary manifest {p}: {exc}") from None
    comps = {
        name: Component(
            name=name,
            version=str(c["version"]),
            path=c["path"],
            binaries=dict(c["binaries"]),
            sha256=dict(c.get("sha256") or {}),
            debian_packages=tuple(c.get("debian_packages") or ()),
        )
        for name, c in data["components"].items()
    }
    return Manifest(data.get("default_base_url", "https://github.com"), dict(data["arch_aliases"]), comps)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, *, timeout: float = 30.0) -> str:
    """Stream `url` into `dest`; return the sha256 of what was written. Raise Unreachable."""
    h = hashlib.sha256()
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as resp:
            if resp.status_code >= 400:
                raise Unreachable(f"HTTP {resp.status_code}")
            with open(dest, "wb") as f:
                for chunk in resp.iter_bytes(_CHUNK):
                    h.update(chunk)
                    f.write(chunk)
    except httpx.HTTPError as exc:
        raise Unreachable(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from None
    return h.hexdigest()


def _read_record(bin_dir: Path) -> dict:
    try:
        return json.loads((bin_dir / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return {}


def _write_record(bin_dir: Path, component: str, entry: dict) -> None:
    record = _read_record(bin_dir)
    record[component] = entry
    write_text_atomic(bin_dir / RECORD_NAME, json.dumps(record, indent=2, sort_keys=True) + "\n")


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def _extract_members(archive: Path, members: dict[str, str], dest_dir: Path) -> dict[str, Path]:
    """Copy only the named regular files out of a .tar.gz; never trust archive paths."""
    wanted = {_norm(m): name for name, m in members.items()}
    out: dict[str, Path] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar:
                key = _norm(info.name)
                if key not in wanted:
                    continue
                if not info.isreg():
                    raise SetupError(f"{archive.name}: '{info.name}' is not a regular file; nothing was installed")
                src = tar.extractfile(info)
                assert src is not None
                target = dest_dir / wanted[key]
                with open(target, "wb") as f:
                    shutil.copyfileobj(src, f)
                target.chmod(0o755)
                out[wanted[key]] = target
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise SetupError(f"archive {archive.name} is corrupt or not a .tar.gz ({type(exc).__name__}: {exc}); "
                         "nothing was installed") from None
    missing = [m for m, name in wanted.items() if name not in out]
    if missing:
        raise SetupError(f"archive {archive.name} does not contain {', '.join(missing)}; nothing was installed")
    return out


def _commit(staged: dict[str, Path], bin_dir: Path) -> list[Path]:
    final = []
    for name, path in staged.items():
        target = bin_dir / name
        os.replace(path, target)
        final.append(target)
    return final


def _verify(comp: Component, goarch: str, actual: str, origin: str, say: Say) -> bool:
    expected = comp.pinned_sha256(goarch)
    if expected is None:
        say(f"WARNING: no sha256 pinned for {comp.name} {comp.version} ({goarch}) in {MANIFEST_PATH.name}; "
            f"{origin} is NOT verified (sha256 {actual}). Pin it in launcher/binaries.json.")
        return False
    if actual != expected:
        raise SetupError(
            f"checksum mismatch for {comp.archive_name(goarch)} from {origin}:\n"
            f"  expected sha256 {expected}\n  got      sha256 {actual}\n"
            "nothing was installed; the file may be corrupt or tampered with")
    return True


def _install_archive(comp: Component, goarch: str, archive: Path, actual_sha: str, origin: str,
                     bin_dir: Path, work: Path, say: Say) -> tuple[list[Path], bool]:
    verified = _verify(comp, goarch, actual_sha, origin, say)
    staged = _extract_members(archive, comp.members(goarch), work)
    return _commit(staged, bin_dir), verified


def _from_path(comp: Component, bin_dir: Path, work: Path) -> list[Path] | None:
    """Copy executables found on PATH into bin/; None if any is missing."""
    found: dict[str, Path] = {}
    for name in comp.binaries:
        where = shutil.which(name)
        if where is None:
            return None
        found[name] = Path(where).resolve()
    staged: dict[str, Path] = {}
    for name, src in found.items():
        if src == (bin_dir / name).resolve():
            continue  # already the installed copy
        tmp = work / name
        shutil.copy2(src, tmp)
        tmp.chmod(0o755)
        staged[name] = tmp
    _commit(staged, bin_dir)
    return [bin_dir / n for n in comp.binaries]


def install_component(comp: Component, goarch: str, bin_dir: Path, *, base_url: str,
                      local_archive: Path | None = None, reinstall: bool = False,
                      timeout: float = 30.0, say: Say = print) -> InstallResult:
    bin_dir.mkdir(parents=True, exist_ok=True)
    expected = comp.pinned_sha256(goarch)
    rec = _read_record(bin_dir).get(comp.name, {})
    names = list(comp.binaries)
    if (not reinstall and local_archive is None and rec.get("source") in ("download", "local-archive")
            and rec.get("version") == comp.version and rec.get("goarch") == goarch
            and expected and rec.get("sha256") == expected
            and all((bin_dir / n).is_file() for n in names)):
        say(f"{comp.name} {comp.version}: already installed in {bin_dir} (verified), skipping")
        return InstallResult(comp.name, "already-installed", comp.version, True,
                             [bin_dir / n for n in names], expected)

    with tempfile.TemporaryDirectory(prefix=f".setup-{comp.name}-", dir=bin_dir) as tmpdir:
        work = Path(tmpdir)
        if local_archive is not None:
            archive = Path(local_archive)
            if not archive.is_file():
                raise SetupError(f"local archive for {comp.name} not found: {archive}")
            actual = sha256_file(archive)
            paths, verified = _install_archive(comp, goarch, archive, actual, f"local file {archive}",
                                               bin_dir, work, say)
            _write_record(bin_dir, comp.name, {"source": "local-archive", "version": comp.version,
                                               "goarch": goarch, "sha256": actual, "verified": verified,
                                               "origin": str(archive)})
            say(f"{comp.name} {comp.version}: installed {', '.join(names)} from local archive {archive}"
                + (" (sha256 verified)" if verified else " (NOT verified)"))
            return InstallResult(comp.name, "local-archive", comp.version, verified, paths, actual)

        url = comp.url(base_url, goarch)
        say(f"{comp.name} {comp.version}: downloading {url}")
        dl = work / comp.archive_name(goarch)
        try:
            actual = download(url, dl, timeout=timeout)
        except Unreachable as exc:
            reason = str(exc)
        else:
            paths, verified = _install_archive(comp, goarch, dl, actual, url, bin_dir, work, say)
            _write_record(bin_dir, comp.name, {"source": "download", "version": comp.version,
                                               "goarch": goarch, "sha256": actual, "verified": verified,
                                               "origin": url})
            say(f"{comp.name} {comp.version}: installed {', '.join(names)} into {bin_dir}"
                + (" (sha256 verified)" if verified else " (NOT verified)"))
            return InstallResult(comp.name, "download", comp.version, verified, paths, actual)

        say(f"WARNING: {comp.name}: cannot download {url} ({reason}).")
        paths = _from_path(comp, bin_dir, work)
        if paths is None:
            flag = f"--{comp.name}-archive"
            pkgs = " ".join(comp.debian_packages)
            raise SetupError(
                f"cannot install {comp.name}: the release site is unreachable ({reason}) and "
                f"{' / '.join(names)} not found on PATH.\n"
                f"  fix: download {comp.archive_name(goarch)} on a machine with internet access and run "
                f"setup with {flag} FILE"
                + (f", or install the distribution package ({pkgs})" if pkgs else ""))
        _write_record(bin_dir, comp.name, {"source": "path", "version": None, "goarch": goarch,
                                           "sha256": None, "verified": False,
                                           "origin": [shutil.which(n) for n in names]})
        origins = ", ".join(f"{n} <- {shutil.which(n)}" for n in names)
        say(f"WARNING: {comp.name}: FELL BACK to binaries already on PATH ({origins}); copied into {bin_dir}. "
            f"Their version is whatever is installed (pinned: {comp.version}) and they are NOT checksum-verified.")
        return InstallResult(comp.name, "path", None, False, paths, None,
                             note=f"site unreachable: {reason}")


def install_all(arch: str, bin_dir: Path, *, manifest: Manifest | None = None, base_url: str | None = None,
                local_archives: dict[str, Path | None] | None = None, reinstall: bool = False,
                timeout: float = 30.0, say: Say = print) -> list[InstallResult]:
    """Install every component of the manifest for `arch` (aarch64 | x86_64) into `bin_dir`."""
    m = manifest or load_manifest()
    goarch = m.goarch(arch)
    base = base_url or os.environ.get(BASE_URL_ENV) or m.default_base_url
    local_archives = local_archives or {}
    return [install_component(c, goarch, bin_dir, base_url=base, local_archive=local_archives.get(name),
                              reinstall=reinstall, timeout=timeout, say=say)
            for name, c in m.components.items()]


__all__ = [
    "BASE_URL_ENV",
    "MANIFEST_PATH",
    "Component",
    "InstallResult",
    "Manifest",
    "install_all",
    "install_component",
    "load_manifest",
    "sha256_file",
]

