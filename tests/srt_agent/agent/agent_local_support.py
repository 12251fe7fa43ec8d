"""Helpers for running the real agent with the local executor and the simulated engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass
class LocalRun:
    workdir: Path
    model_dir: Path

    def job_file(self, name: str = "agent-test", *, benchmark: dict | None = None, mode: str = "disagg",
                 extra: dict | None = None) -> Path:
        job: dict = {
            "name": name,
            "model": {"path": "sim-model"},
            "backend": {"engine": "sim", "use_sglang_router": True,
                        "sim": {"startup_s": 0.5, "decode_step_ms": 5, "decode_step_ms_per_request": 0.0,
                                "prefill_tokens_per_s_per_gpu": 1e6}},
            "benchmark": benchmark or {"type": "manual"},
            "health": {"worker_timeout_s": 60, "frontend_timeout_s": 60, "shutdown_grace_s": 5},
        }
        if mode == "disagg":
            job["resources"] = {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1,
                                "gpus_per_node": 2}
        else:
            job["resources"] = {"agg_nodes": 1, "agg_workers": 2, "gpus_per_node": 2}
        def merge(into: dict, new: dict) -> None:
            for k, v in new.items():
                if isinstance(v, dict) and isinstance(into.get(k), dict):
                    merge(into[k], v)
                else:
                    into[k] = v

        merge(job, extra or {})
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(job, sort_keys=False))
        return path

    def env(self) -> dict[str, str]:
        return {**os.environ, "SRTSLURM_CONFIG": str(self.workdir / "srtslurm.yaml")}

    def apply(self, job: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--local", "-f", str(job), *args],
                             cwd=self.workdir, env=self.env(), capture_output=True, text=True, timeout=timeout)
        if res.returncode != 0:  # a failing test shows why each process stopped, not only that it did
            res.stderr += self.process_log_tails()
        return res

    def process_log_tails(self, lines: int = 15) -> str:
        try:
            logs = sorted((self.run_dir() / "logs").glob("*.log"))
        except AssertionError:
            return ""
        return "".join(f"\n--- {p.name} (last {lines} lines)\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
                       for p in logs)

    def srtctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "launcher.cli", *args], cwd=self.workdir, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def start(self, job: Path, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "launcher.cli", "apply", "--local", "-f", str(job), *args],
                                cwd=self.workdir, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)

    def run_dir(self) -> Path:
        assert (self.workdir / "logs").is_dir(), "no logs directory yet"
        dirs = sorted(p for p in (self.workdir / "logs").iterdir() if p.is_dir() and not p.name.startswith("."))
        assert dirs, "no run directory"
        return dirs[-1]

    def wait_status(self, predicate, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = json.loads((self.run_dir() / "status.json").read_text())
                if predicate(last):
                    return last
            except (AssertionError, FileNotFoundError, StopIteration):
                pass
            time.sleep(0.1)
        raise AssertionError(f"status condition not reached in {timeout}s; last status: {last}")


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


