"""Helpers and fixtures of the simulated-engine tests: real processes on 127.0.0.1, ports 30000-30899."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srt_agent.sim.model_dir import write_model_dir

PORT_RANGE = (30000, 30899)  # 30900-30999: benchmarks/sim_engine.py
_used: set[int] = set()


def free_port() -> int:
    """A port in this test suite's range that nothing listens on right now."""
    for _ in range(500):
        port = random.randint(*PORT_RANGE)
        if port in _used:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used.add(port)
        return port
    raise RuntimeError("no free port in 30000-30899")


def require_tool(ok: bool, what: str) -> None:
    """Skip when a tool is missing locally; fail under CI (CI=true), where it must be installed."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed")
    pytest.skip(f"{what} is not installed")


def http_status(port: int, path: str) -> int | None:
    """Status of GET path on 127.0.0.1:port, None if nothing answers (cheap: no httpx client)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


class SimProcess:
    """`python -m srt_agent.sim ARGS` with its log in a file; stop() sends SIGTERM."""

    def __init__(self, args: list[str], log_path: Path, port: int | None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}" if port else None
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (open for the process's lifetime)
        self.proc = subprocess.Popen([sys.executable, "-m", "srt_agent.sim", *args],
                                     stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"sim exited early ({self.proc.returncode}):\n{self.log}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise TimeoutError(f"sim on {self.port} not listening:\n{self.log}")

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"sim exited early ({self.proc.returncode}):\n{self.log}"
            if http_status(self.port, "/health") == 200:
                return
            time.sleep(0.02)
        raise TimeoutError(f"sim on {self.port} not healthy:\n{self.log}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


FAST = ["--sim-decode-step-ms", "5", "--sim-decode-step-ms-per-request", "0", "--sim-kv-transfer-ms", "1"]


@pytest.fixture
def start_sim(tmp_path):
    """start_sim(*args, healthy=True) -> SimProcess on a free port; all stopped at teardown."""
    procs: list[SimProcess] = []

    def start(*args: str, healthy: bool = True, port: int | None = None, listen: bool = True) -> SimProcess:
        port = port or free_port()
        sim = SimProcess(["--host", "127.0.0.1", "--port", str(port), *args],
                         tmp_path / f"sim-{port}.log", port)
        procs.append(sim)
        if healthy:
            sim.wait_healthy()
        elif listen:
            sim.wait_listening()
        return sim

    yield start
    for sim in procs:
        sim.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return write_model_dir(tmp_path_factory.mktemp("model") / "sim-model")


def sse_events(lines) -> list[dict | str]:
    """Parsed `data:` payloads of an SSE stream (JSON objects, or the string "[DONE]")."""
    out: list[dict | str] = []
    for line in lines:
        if line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out
