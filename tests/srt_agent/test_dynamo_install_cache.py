"""The real Dynamo install (templates/process.sh.j2 + srt_agent/dynamo_install.py) against a local
package index on 127.0.0.1 serving wheels built here: fake `ai-dynamo`/`ai-dynamo-runtime` 0.7.0
whose dependency `srtfakedep<2` conflicts with the stand-in container's `srtfakedep 2.0`.

The container is left untouched, the worker runs with the replaced version and its log names it,
concurrent workers build the cache once, a second job reuses it, and a container that already has
the version installs nothing."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from srt_agent.launch_script import render_launch_script
from srt_agent.plan import ProcessSpec

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with pip: the stand-in container's base interpreter
SHOW = ("import importlib.metadata as m, dynamo; "
        "print('RUN', m.version('srtfakedep'), m.version('ai-dynamo'), m.version('srtfakenew'))")


def _wheel(index: Path, name: str, version: str, requires: list[str], files: dict[str, str]) -> None:
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *[f"Requires-Dist: {r}\n" for r in requires]])
    contents = {**files, f"{info}/METADATA": meta,
                f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: srt-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    contents[f"{info}/RECORD"] = "".join(f"{p},,\n" for p in [*contents, f"{info}/RECORD"])
    project = index / "simple" / name
    project.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(project / f"{dist}-{version}-py3-none-any.whl", "w") as z:
        for path, text in contents.items():
            z.writestr(path, text)


class _Index:
    """http.server over the wheel directory (its listings are a PEP 503 simple index); counts downloads."""

    def __init__(self, root: Path) -> None:
        self.downloads: list[str] = []
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.endswith(".whl"):
                    index.downloads.append(self.path.rsplit("/", 1)[-1])
                super().do_GET()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pip_env(index: _Index) -> dict[str, str]:
    """pip sees only the local index (no pip.conf, no pip cache)."""
    return {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index.url, "PIP_NO_CACHE_DIR": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture
def index(tmp_path):
    root = tmp_path / "index"
    _wheel(root, "ai-dynamo", "0.7.0", ["srtfakedep<2", "ai-dynamo-runtime==0.7.0"],
           {"dynamo/__init__.py": "", "dynamo/__main__.py": SHOW})
    _wheel(root, "ai-dynamo-runtime", "0.7.0", ["srtfakenew>=1"], {"dynamo_runtime_fake/__init__.py": ""})
    for v in ("1.5", "2.0"):
        _wheel(root, "srtfakedep", v, [], {"srtfakedep/__init__.py": f"VERSION = {v!r}\n"})
    _wheel(root, "srtfakenew", "1.0", [], {"srtfakenew/__init__.py": ""})
    idx = _Index(root)
    yield idx
    idx.close()


@pytest.fixture
def container(tmp_path, index) -> Path:
    if not Path(SYSTEM_PYTHON).exists() or subprocess.run([SYSTEM_PYTHON, "-m", "pip", "--version"],
                                                          capture_output=True).returncode:
        pytest.skip("needs Debian's python3 with pip (python3-pip)")
    env = tmp_path / "container"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", "--system-site-packages", str(env)], check=True)
    subprocess.run([str(env / "bin" / "python3"), "-m", "pip", "install", "-q", "--index-url", index.url,
                    "--disable-pip-version-check", "srtfakedep==2.0"], check=True, env=_pip_env(index))
    index.downloads.clear()
    return env / "bin" / "python3"


def _script(run_dir: Path, name: str, python: Path, cache: Path) -> Path:
    proc = ProcessSpec(name=name, kind="worker", node="n0", address="127.0.0.1", role="decode", worker=0,
                       command=[str(python), "-m", "dynamo"], python=str(python), dynamo_version="0.7.0")
    text, _ = render_launch_script(None, proc, log_dir=str(run_dir), configs_dir=str(run_dir),  # type: ignore[arg-type]
                                   setup_script=None, dynamo_cache=str(cache))
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    path = run_dir / f"{name}.sh"
    path.write_text(text)
    return path


def _version(python: Path, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_install_replaces_only_the_conflict_and_the_cache_is_shared(tmp_path, index, container):
    env = _pip_env(index)
    cache = tmp_path / "cache"
    job1 = tmp_path / "job1"
    scripts = [_script(job1, f"decode-{i}", container, cache) for i in range(2)]
    procs = [subprocess.Popen(["bash", str(s)], env=env) for s in scripts]
    assert [p.wait(timeout=180) for p in procs] == [0, 0]
    assert sorted(index.downloads) == ["ai_dynamo-0.7.0-py3-none-any.whl", "ai_dynamo_runtime-0.7.0-py3-none-any.whl",
                                       "srtfakedep-1.5-py3-none-any.whl", "srtfakenew-1.0-py3-none-any.whl"]
    records = []
    for i in range(2):
        log = (job1 / "logs" / f"n0_decode-{i}.log").read_text()
        assert "RUN 1.5 0.7.0 1.0" in log  # the worker runs with what ai-dynamo needs
        assert "replaced srtfakedep 2.0 (container) with 1.5" in log
        assert "added srtfakenew 1.0" in log and "added ai-dynamo 0.7.0" in log
        records.append(json.loads((job1 / "dynamo" / f"decode-{i}.json").read_text()))
    assert sorted(r["cache"] for r in records) == ["built", "reused"]
    assert records[0]["replaced"] == [{"name": "srtfakedep", "from": "2.0", "to": "1.5"}]
    published = [p.name for p in cache.iterdir() if p.is_dir()]
    assert len(published) == 1 and published[0].startswith("ai-dynamo-0.7.0-") and "-py3." in published[0]
    assert _version(container, "srtfakedep") == "2.0"  # the container itself is untouched

    job2 = tmp_path / "job2"  # a second job reuses the cache: nothing downloaded
    assert subprocess.run(["bash", str(_script(job2, "decode-0", container, cache))], env=env).returncode == 0
    log = (job2 / "logs" / "n0_decode-0.log").read_text()
    assert "reusing" in log and "replaced srtfakedep 2.0 (container) with 1.5" in log and "RUN 1.5" in log
    assert len(index.downloads) == 4

    # a container that already has ai-dynamo 0.7.0 installs nothing and runs its own python
    subprocess.run([str(container), "-m", "pip", "install", "-q", "--no-deps", "ai-dynamo==0.7.0",
                    "ai-dynamo-runtime==0.7.0", "srtfakenew==1.0"], env=env, check=True)
    job3 = tmp_path / "job3"
    assert subprocess.run(["bash", str(_script(job3, "decode-0", container, cache))], env=env).returncode == 0
    log = (job3 / "logs" / "n0_decode-0.log").read_text()
    assert "already has ai-dynamo 0.7.0; nothing installed" in log and "RUN 2.0 0.7.0" in log
    assert json.loads((job3 / "dynamo" / "decode-0.json").read_text())["cache"] == "container"


def test_container_workers_use_the_installer_and_cache_under_the_mounted_checkout():
    proc = ProcessSpec(name="decode-0", kind="worker", node="n0", address="10.0.0.1", role="decode", worker=0,
                       command=["python3", "-m", "dynamo.sglang"], dynamo_version="0.7.0", container=True)
    text, _ = render_launch_script(None, proc, log_dir="/host/run", configs_dir="/host/configs",  # type: ignore[arg-type]
                                   setup_script=None, dynamo_cache="/host/srtctl/.cache")
    assert "python3 /srtctl/srt_agent/dynamo_install.py --version 0.7.0 --cache-root /srtctl/.cache" in text
    assert "--record /logs/dynamo/decode-0.json" in text and "/host/srtctl" not in text
    assert 'exec "$srt_python" -m dynamo.sglang' in text and "--target" not in text
    assert "exec >>/logs/logs/n0_decode-0.log" in text


def test_a_git_ref_installs_from_dynamos_repository_under_its_own_cache_key():
    from srt_agent import dynamo_install

    reqs = dynamo_install.requirements("git:abc1234")
    assert reqs == ["ai-dynamo-runtime @ git+https://github.com/ai-dynamo/dynamo.git@abc1234"
                    "#subdirectory=lib/bindings/python",
                    "ai-dynamo @ git+https://github.com/ai-dynamo/dynamo.git@abc1234"]
    assert dynamo_install.requirements("0.7.0") == ["ai-dynamo==0.7.0", "ai-dynamo-runtime==0.7.0"]
    key = dynamo_install.cache_key("git:feature/x", "/c/img.sqsh", "3.12", "aarch64")
    assert key.startswith("ai-dynamo-git-feature_x-img.sqsh-") and "/" not in key
