"""Agent overhead: time from agent start to `ready` beyond the slowest worker's own start-up, and
time from a worker's death to the job's exit.

    python benchmarks/agent_overhead.py [--nodes 4 16] [--startup-s 3] [--repeat 2]

Runs the real agent with the local executor (same code path as SLURM but subprocesses instead of
srun steps) and simulated workers that take a known --startup-s to turn healthy, behind the sglang
router. Baseline, side by side: one bare simulated worker started by hand, measured from spawn to
/health 200 (the worker's own start-up, with interpreter import time).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def ts(s: str) -> float:
    return datetime.fromisoformat(s).timestamp()


def bare_worker_startup(model: Path, startup_s: float) -> float:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "srt_agent.sim", "--model-path", str(model), "--port", str(port),
                          "--sim-startup-s", str(startup_s)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1, trust_env=False).status_code == 200:
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    finally:
        p.terminate()
        p.wait()


def run_once(work: Path, model: Path, nodes: int, startup_s: float) -> dict:
    half = nodes // 2
    job = {"name": f"overhead-{nodes}", "model": {"path": "m"},
           "resources": {"prefill_nodes": half, "decode_nodes": half, "prefill_workers": half,
                         "decode_workers": half, "gpus_per_node": 4},
           "backend": {"engine": "sim", "use_sglang_router": True, "sim": {"startup_s": startup_s}},
           "benchmark": {"type": "manual"}}
    (work / "job.yaml").write_text(yaml.safe_dump(job))
    env = {**os.environ, "SRTSLURM_CONFIG": str(work / "srtslurm.yaml")}
    t0 = time.time()
    p = subprocess.Popen([sys.executable, "-m", "launcher.cli", "apply", "--local", "-f", "job.yaml"], cwd=work,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    p.stdout.readline()  # "Started local job N"
    line = p.stdout.readline()  # "Logs: logs/..."
    run_dir = work / line.removeprefix("Logs: ").strip().rstrip("/")
    status = {}
    while True:
        try:
            status = json.loads((run_dir / "status.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        if status.get("state") in ("ready", "failed"):
            break
        time.sleep(0.05)
    t_ready = time.time()
    assert status["state"] == "ready", status.get("failure")
    workers = [c for c in status["components"] if c["kind"] == "worker"]
    slowest_own = max(ts(c["ready_at"]) - ts(c["started_at"]) for c in workers)
    agent_start = ts(status["started_at"])
    victim = workers[-1]["pid"]
    t_kill = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    p.wait()
    t_exit = time.monotonic()
    events = [json.loads(x) for x in (run_dir / "events.jsonl").read_text().splitlines()]
    fail_ts = next(ts(e["ts"]) for e in events if e["event"] == "failure")
    return {"nodes": nodes, "workers": len(workers), "submit_to_ready_s": t_ready - t0,
            "agent_start_to_ready_s": t_ready - agent_start, "slowest_worker_own_s": slowest_own,
            "overhead_s": (t_ready - agent_start) - slowest_own,
            "death_to_failure_recorded_s": fail_ts - (time.time() - (time.monotonic() - t_kill)),
            "death_to_job_exit_s": t_exit - t_kill}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--startup-s", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    from srt_agent.sim.model_dir import write_model_dir

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "model"
        write_model_dir(str(model))
        (work / "srtslurm.yaml").write_text(yaml.safe_dump({
            "executor": "local", "container_runtime": "none", "node_addresses": "loopback",
            "model_paths": {"m": str(model)}}))
        base = [bare_worker_startup(model, args.startup_s) for _ in range(3)]
        print(f"baseline: one bare simulated worker, spawn -> /health 200: median {statistics.median(base):.2f} s "
              f"(startup_s={args.startup_s})")
        print(f"{'nodes':>5} {'workers':>7} {'agent->ready s':>14} {'slowest worker s':>16} {'overhead s':>10} "
              f"{'death->recorded s':>17} {'death->exit s':>13}")
        for n in args.nodes:
            rows = [run_once(work, model, n, args.startup_s) for _ in range(args.repeat)]
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k not in ("nodes", "workers")}
            print(f"{n:>5} {rows[0]['workers']:>7} {med['agent_start_to_ready_s']:>14.2f} "
                  f"{med['slowest_worker_own_s']:>16.2f} {med['overhead_s']:>10.2f} "
                  f"{med['death_to_failure_recorded_s']:>17.3f} {med['death_to_job_exit_s']:>13.2f}")


if __name__ == "__main__":
    main()
