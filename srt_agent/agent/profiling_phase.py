"""The profiling phase: load through the public endpoint while every worker leader records a trace.

Once the deployment is ready the agent:

1. works out one profiling target per worker (its leader: SGLang's tokenizer manager there
   forwards the request to every rank, on every node of the worker);
2. POSTs `start_profile` to each target with `output_dir`, `start_step`,
   `num_steps = stop_step - start_step` and `activities` (["CPU", "GPU"] for torch,
   ["CUDA_PROFILER"] for nsys, which turns the `nsys profile -c cudaProfilerApi` wrapper on);
3. drives `profiling.concurrency` streams of `isl`/`osl` requests through the public endpoint
   with the load generator (`python -m srt_agent.loadgen`, log in logs/profiling.log, result in
   results/profiling_load.json); latency does not matter here, but a load that returned no
   tokens fails the phase. torch: while some worker has not finished its `num_steps` (no trace
   yet), another round follows (results/profiling_load_2.json, ...; at most MAX_LOAD_ROUNDS);
4. POSTs `stop_profile` to each target (SGLang stops by itself after `num_steps` and then answers
   this call with an error, so errors here are only recorded as events);
5. waits until every target's trace files exist and stop growing (deadline TRACE_TIMEOUT_S,
   600 s; not a job setting).

Where the control endpoint is (each engine's `profile_control_url`, srt_agent/engines):
- direct SGLang workers (use_sglang_router: true) and the simulated engine: the worker's HTTP
  port, `POST /start_profile` and `POST /stop_profile`;
- SGLang behind Dynamo (`python -m dynamo.sglang`): the worker's Dynamo system server
  (DYN_SYSTEM_PORT), `POST /engine/start_profile` and `/engine/stop_profile`, which Dynamo
  forwards to SGLang's tokenizer manager (Dynamo releases from late 2025 on; an older Dynamo
  answers 404 and the phase fails saying so);
- Dynamo's mocker has no profiler: ProfilingError.

Where traces land (host paths, relative to the run directory):
- torch: profiles/<role>/ when the role has one worker, profiles/<role>/<role>-<i>/ when it has
  several (so each file can be attributed to a worker);
- nsys: profiles/nsys_<role>_<i>_<node>.nsys-rep, one per node of every worker (the `-o` the
  plan gave each wrapped command, recorded as `nsys_output` on its ProcessSpec).

Modules: profiling_targets (targets, request bodies, start/stop calls), profiling_traces (trace
files), this one (the load and the phase; the load generator's argv is built here, in
profiling_loadgen_command).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import anyio

from ..errors import ProfilingError
from ..loadgen.config import from_job
from ..plan import Plan
from .benchmark_phase import run_loadgen, tokenizer_dir
from .profiling_targets import (  # noqa: F401 - the phase's public names, imported from here by tests
    NSYS_ACTIVITIES,
    TORCH_ACTIVITIES,
    NsysOutput,
    ProfileTarget,
    control_url,
    nsys_output,
    profile_request,
    profile_targets,
    start_profiles,
    stop_profiles,
)
from .profiling_traces import POLL_S, snapshot, collect_traces, wait_for_traces

TRACE_TIMEOUT_S = 600.0  # writing a torch trace of a large TP/EP worker can take minutes
PROFILING_LOG = "logs/profiling.log"
LOAD_RESULT = "results/profiling_load.json"
MAX_LOAD_ROUNDS = 4  # load rounds while some worker has not reached num_steps (prefill batches arrivals)
ROUND_GRACE_S = 2.0  # after a round, how long traces of workers that stopped by themselves may take


# ---- the profiling load ---------------------------------------------------------------------------


def profiling_num_prompts(profiling) -> int:
    """Requests in one round of the profiling load.

    SGLang counts forward steps since server start; a decode worker runs about one step per
    output token of the running batch (num_prompts x (osl - 1) / concurrency steps), a prefill
    worker one step per batch of arrivals (between num_prompts / concurrency and num_prompts).
    Rounds repeat (up to MAX_LOAD_ROUNDS) while a worker has not finished its `num_steps`.
    """
    c, steps = profiling.concurrency, profiling.max_stop_step
    decode_cover = math.ceil(steps * c / max(1, profiling.osl - 1))
    return max(2 * c, steps + c, decode_cover + c)


def profiling_loadgen_command(plan: Plan, profiling, out: Path, *, tokenizer: str | None) -> list[str]:
    return from_job(plan, profiling=profiling, num_prompts=profiling_num_prompts(profiling),
                    tokenizer=tokenizer).command(out)


# ---- the phase ---------------------------------------------------------------------------------


def check_load_result(path: Path, returncode: int | None) -> dict:
    """The profiling load must have returned tokens; its latency does not matter."""
    import json

    if not path.is_file():
        raise ProfilingError(f"the profiling load (load generator exit code {returncode}) wrote no result; "
                             f"see {PROFILING_LOG}")
    result = json.loads(path.read_text())
    completed = int(result.get("completed") or 0)
    tokens = int(result.get("total_output_tokens") or 0)
    if completed == 0 or tokens <= 0:
        errors = result.get("errors") or {}
        top = "; ".join(f"{n}x {msg}" for msg, n in list(errors.items())[:3])
        raise ProfilingError(f"the profiling load got no tokens back ({completed} of "
                             f"{completed + int(result.get('failed') or 0)} requests completed, "
                             f"{tokens} output tokens){' - errors: ' + top if top else ''}; see {PROFILING_LOG}")
    return result


async def run_profiling(ctx, plan: Plan) -> list[str]:
    """Profile every worker leader under load; returns the trace files, relative to the run directory."""
    job = ctx.job
    profiling = job.profiling
    run_dir = Path(ctx.run_dir)
    status = ctx.status
    if profiling.type not in ("torch", "nsys"):
        raise ProfilingError(f"profiling type {profiling.type!r} is not torch or nsys")
    targets = profile_targets(plan, profiling.type, run_dir)
    if not targets:
        raise ProfilingError("the plan has no workers to profile")
    if profiling.type == "torch":
        for t in targets:
            t.host_dir.mkdir(parents=True, exist_ok=True)
    before = snapshot(targets)
    deadline_s = TRACE_TIMEOUT_S

    status.update(message=f"profiling ({profiling.type}): starting the profiler on {len(targets)} worker(s)")
    await start_profiles(targets, profiling)
    status.event("profiling_started", type=profiling.type, start_step=profiling.start_step,
                 num_steps=profiling.stop_step - profiling.start_step,
                 workers={t.worker: t.output_dir for t in targets})
    stopped = False
    try:
        tokenizer = tokenizer_dir(ctx.resolved.model_path)
        n = profiling_num_prompts(profiling)
        # nsys writes its report a while after the capture range ends, so "no report yet" says nothing
        # about the steps: one round there (stop_profile ends a range the load did not fill)
        rounds = MAX_LOAD_ROUNDS if profiling.type == "torch" else 1
        for round_no in range(1, rounds + 1):
            rel = LOAD_RESULT if round_no == 1 else LOAD_RESULT.replace(".json", f"_{round_no}.json")
            out = run_dir / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            cmd = profiling_loadgen_command(plan, profiling, out, tokenizer=tokenizer)
            status.update(message=f"profiling ({profiling.type}): load round {round_no}: {n} requests "
                                  f"isl={profiling.isl} osl={profiling.osl} concurrency={profiling.concurrency} "
                                  f"through {plan.endpoint.url}")
            rc = await run_loadgen(cmd, run_dir / PROFILING_LOG)
            result = check_load_result(out, rc)
            status.event("profiling_load_done", round=round_no, completed=result.get("completed"),
                         failed=result.get("failed"), output_tokens=result.get("total_output_tokens"),
                         duration=result.get("duration"), file=rel)
            if round_no == rounds:
                break
            missing = await _still_missing(targets, before, ROUND_GRACE_S)
            if not missing:
                break
            status.event("profiling_load_again", waiting_for=missing,
                         note="a worker has not run num_steps steps yet; sending another round")
        problems = await stop_profiles(targets)
        stopped = True
        if problems:
            status.event("profiling_stop_refused", workers=problems,
                         note="expected when the worker already stopped after num_steps")
    finally:
        if not stopped:  # the load failed or the phase was cancelled: leave no worker profiling
            with anyio.CancelScope(shield=True), anyio.move_on_after(30):
                await stop_profiles(targets)

    status.update(message=f"profiling ({profiling.type}): waiting for trace files")
    paths = await wait_for_traces(targets, before, deadline_s=deadline_s, hint="see the worker logs in logs/")
    files = [_relative(p, run_dir) for p in paths]
    status.event("profiling_traces", files=files)
    status.update(message=f"profiling ({profiling.type}): {len(files)} trace file(s) in profiles/")
    return files


async def _still_missing(targets: list[ProfileTarget], before: dict[Path, tuple[int, float]],
                         grace_s: float) -> list[str]:
    """Targets without a trace yet, after giving self-stopped workers `grace_s` to write theirs."""
    deadline = time.monotonic() + grace_s
    while True:
        _files, missing = collect_traces(targets, before)
        if not missing or time.monotonic() >= deadline:
            return missing
        await anyio.sleep(min(POLL_S, 0.2))


def _relative(path: Path, run_dir: Path) -> str:
    try:
        return str(path.resolve().relative_to(run_dir.resolve()))
    except ValueError:
        return str(path)
