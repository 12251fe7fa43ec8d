"""`benchmark.type: custom`: the user's own command, run once against the ready endpoint.

It runs on the head node (inside the job's container when the workers use one) through the
launcher's `run_once`, i.e. the one srun builder; its environment names the endpoint URL, the served
model, the run's results directory and an artifacts directory in it, results/aiperf
(custom_command.PROVIDED_ENV; the result record lists its files). The script comes from
templates/custom_benchmark.sh.j2 (every value quoted); the output goes to logs/custom-benchmark.log,
the outcome to results/custom_benchmark.json, status.json (`benchmark.custom`) and the ledger, so a
finished command is not run again on resume. A non-zero exit fails the phase with the log's tail.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio

from ..atomic import write_json_atomic, write_text_atomic
from ..custom_command import ARTIFACTS, DEFAULT_TIMEOUT_S, LOG, SCRIPT, render_script, shown_command
from ..errors import BenchmarkError
from ..plan import CONTAINER_LOGS, Plan
from ..secrets import redact_text
from .benchmark_phase import _attach_server_metrics, _start_scraper
from .ledger import Ledger
from .status import StatusWriter

PHASE = "benchmark"
RESULT = "results/custom_benchmark.json"
TAIL_LINES = 20


def _tail(path: Path, n: int = TAIL_LINES) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no output)"
    return "\n".join(lines[-n:]) or "(no output)"


def _artifacts(run_dir: Path) -> dict:
    """What the command left in its artifacts directory (relative paths, sizes)."""
    root = run_dir / ARTIFACTS
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
    return {"dir": ARTIFACTS, "count": len(files), "files": [  # the first 200 listed
        {"path": str(p.relative_to(run_dir)), "bytes": p.stat().st_size} for p in files[:200]]}


async def run_custom_benchmark(ctx, plan: Plan, ledger: Ledger, status: StatusWriter) -> dict:
    """Run the command once (unless the ledger has it done); the result record."""
    b = ctx.job.benchmark
    run_dir: Path = ctx.run_dir
    result_path = run_dir / RESULT
    if ledger.phase_done(PHASE) and result_path.is_file():
        status.event("phase_skipped", phase=PHASE, reason="the custom benchmark already finished", file=RESULT)
        return json.loads(result_path.read_text())
    worker = plan.by_kind("worker")[0]
    image = plan.container_image if worker.container else None
    base = CONTAINER_LOGS if image else str(run_dir)
    (run_dir / ARTIFACTS).mkdir(parents=True, exist_ok=True)  # the command's AIPERF_ARTIFACT_DIR
    (run_dir / "launch").mkdir(exist_ok=True)
    write_text_atomic(run_dir / SCRIPT, render_script(plan, b, base=base))
    timeout = b.timeout_s or DEFAULT_TIMEOUT_S
    status.event("custom_benchmark_start", node=plan.head_node, command=shown_command(b.command), log=LOG)
    status.benchmark(custom={"state": "running", "log": LOG})
    scraper = _start_scraper(plan, b)  # the servers' Prometheus pages while the command runs
    started = time.time()
    async with anyio.create_task_group() as scrape_tg:
        if scraper is not None:
            scrape_tg.start_soon(scraper.run)
        res = await ctx.launcher.run_once(["bash", f"{base}/{SCRIPT}"], plan.head_node, container_image=image,
                                          container_mounts=plan.container_mounts if image else (),
                                          timeout=timeout, name="srt-custom-benchmark")
        scrape_tg.cancel_scope.cancel()
    ended = time.time()
    if res.output.strip():  # what srun/pyxis said (the script's own output is in the log already)
        with open(run_dir / LOG, "a") as f:
            f.write(res.output if res.output.endswith("\n") else res.output + "\n")
    result = {"type": "custom", "command": b.command, "exit_code": res.returncode, "node": plan.head_node,
              "started_unix": started, "ended_unix": ended, "duration_s": round(ended - started, 3), "log": LOG,
              "passed": res.returncode == 0, "artifacts": _artifacts(run_dir)}
    write_json_atomic(result_path, result)
    if scraper is not None:  # results/custom_benchmark.csv.gz and result["server_metrics"]
        _attach_server_metrics(scraper, {**result, "measured_start_unix": started, "measured_end_unix": ended},
                               result_path, run_dir / "results", status)
        result = json.loads(result_path.read_text())
    status.benchmark(custom={"state": "done" if res.returncode == 0 else "failed", "exit_code": res.returncode,
                             "log": LOG, "file": RESULT, "duration_s": result["duration_s"]})
    status.event("custom_benchmark_done", exit_code=res.returncode, file=RESULT)
    if res.returncode != 0:
        secrets = [v for env in ctx.secret_env.values() for v in env.values()]  # the tail goes to status.json
        raise BenchmarkError(f"the custom benchmark exited with code {res.returncode} (see {LOG}); its last "
                             f"lines:\n{redact_text(_tail(run_dir / LOG), secrets)}")
    ledger.mark_phase(PHASE, file=RESULT, exit_code=0)
    return result
