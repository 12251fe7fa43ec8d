"""The launch script installs ai-dynamo once per version into a shared cache, only when the
container's python lacks it, and concurrent workers on one filesystem install it only once."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from srt_agent.launch_script import render_launch_script
from srt_agent.plan import ProcessSpec

FAKE_PYTHON = r"""#!/usr/bin/env bash
# stand-in python: no ai-dynamo installed; `-m pip install --target DIR` records the call
if [ "$1" = "-c" ]; then exit 1; fi
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  echo "$*" >> "$PIP_LOG"
  sleep 0.3
  target=""; prev=""
  for a in "$@"; do [ "$prev" = "--target" ] && target=$a; prev=$a; done
  mkdir -p "$target/dynamo" && touch "$target/dynamo/__init__.py"
  exit 0
fi
echo "PYTHONPATH=$PYTHONPATH"
"""


def _script(tmp_path: Path, name: str, fake: Path) -> Path:
    proc = ProcessSpec(name=name, kind="worker", node="n0", address="127.0.0.1", role="decode", worker=0,
                       command=[str(fake), "-m", "dynamo.sglang", "--model-path", "/model"],
                       dynamo_version="0.7.0")
    text, _ = render_launch_script(None, proc, log_dir=str(tmp_path), configs_dir=str(tmp_path),  # type: ignore[arg-type]
                                   setup_script=None, dynamo_cache=str(tmp_path / "cache"))
    path = tmp_path / f"{name}.sh"
    path.write_text(text)
    return path


def test_installs_once_and_reuses_the_cache(tmp_path):
    (tmp_path / "logs").mkdir()
    fake = tmp_path / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    env = {**os.environ, "PIP_LOG": str(tmp_path / "pip.log")}
    scripts = [_script(tmp_path, f"decode-{i}", fake) for i in range(3)]
    procs = [subprocess.Popen(["bash", str(s)], env=env) for s in scripts]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    calls = (tmp_path / "pip.log").read_text().splitlines()
    assert len(calls) == 1 and "ai-dynamo==0.7.0" in calls[0] and "ai-dynamo-runtime==0.7.0" in calls[0]
    assert subprocess.run(["bash", str(scripts[0])], env=env).returncode == 0
    assert len((tmp_path / "pip.log").read_text().splitlines()) == 1
    for i in range(3):
        log = (tmp_path / "logs" / f"n0_decode-{i}.log").read_text()
        assert f"PYTHONPATH={tmp_path}/cache/ai-dynamo-0.7.0" in log


def test_container_workers_use_the_cache_under_the_mounted_checkout(tmp_path):
    proc = ProcessSpec(name="decode-0", kind="worker", node="n0", address="10.0.0.1", role="decode", worker=0,
                       command=["python3", "-m", "dynamo.sglang"], dynamo_version="0.7.0", container=True)
    text, _ = render_launch_script(None, proc, log_dir="/host/run", configs_dir="/host/configs",  # type: ignore[arg-type]
                                   setup_script=None, dynamo_cache="/host/srtctl/.cache")
    assert "cache=/srtctl/.cache/ai-dynamo-0.7.0" in text and "/host/srtctl" not in text
    assert "exec >>/logs/logs/n0_decode-0.log" in text
