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
5. waits until every target's trace files exist and stop growing (deadline
   `profiling.trace_timeout_s` when the job model has it, else TRACE_TIMEOUT_S).

Where the control endpoint is:
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
  plan gave each wrapped command).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from ..errors import ProfilingError
from ..loadgen.config import from_job
from ..plan import CONTAINER_LOGS, Plan, ProcessSpec, WorkerSpec

TRACE_TIMEOUT_S = 600.0  # writing a torch trace of a large TP/EP worker can take minutes
SETTLE_S = 2.0  # files must keep their names and sizes this long before they count as written
POLL_S = 0.5
REQUEST_TIMEOUT_S = 120.0  # start_profile waits for every rank's scheduler to answer
NSYS_SUFFIXES = (".nsys-rep", ".qdrep")
TORCH_ACTIVITIES = ["CPU", "GPU"]
NSYS_ACTIVITIES = ["CUDA_PROFILER"]
PROFILING_LOG = "logs/profiling.log"
LOAD_RESULT = "results/profiling_load.json"
MAX_LOAD_ROUNDS = 4  # load rounds while some worker has not reached num_steps (prefill batches arrivals)
ROUND_GRACE_S = 2.0  # after a round, how long traces of workers that stopped by themselves may take


@dataclass
class NsysOutput:
    """One `nsys profile -o STEM` wrapper: the report appears as STEM.nsys-rep on the host."""

    process: str
    node: str
    host_stem: Path


@dataclass
class ProfileTarget:
    """One worker whose leader receives start_profile/stop_profile."""

    worker: str
    role: str
    control_url: str  # base URL; "/start_profile" and "/stop_profile" are appended
    output_dir: str  # as the worker sees it (inside the container: under /logs)
    host_dir: Path  # the same directory on the agent's host
    nsys: list[NsysOutput] = field(default_factory=list)


# ---- planning (pure) ------------------------------------------------------------------------


def uses_dynamo_system_server(plan: Plan) -> bool:
    """SGLang behind Dynamo: the worker has no HTTP server of its own, only Dynamo's system server."""
    return plan.engine == "sglang" and plan.endpoint.kind != "router"


def control_url(plan: Plan, worker: WorkerSpec) -> str:
    """Base URL of the worker leader's profiling control endpoints."""
    if plan.engine == "dynamo-mocker":
        raise ProfilingError(
            f"{worker.name}: engine dynamo-mocker has no profiler; profiling needs backend.engine sglang "
            f"(with use_sglang_router: true, or Dynamo with SGLang engine routes) or sim")
    if uses_dynamo_system_server(plan):
        leader = plan.process(worker.processes[0])
        if leader.port is None:
            raise ProfilingError(
                f"{worker.name}: SGLang behind Dynamo is profiled through the Dynamo system server, "
                f"but the worker has no DYN_SYSTEM_PORT; set backend.use_sglang_router: true to profile "
                f"through SGLang's own HTTP server")
        return f"http://{leader.address}:{leader.port}/engine"
    if worker.url is None:
        raise ProfilingError(
            f"{worker.name}: the worker has no HTTP port to receive /start_profile; profiling needs "
            f"backend.use_sglang_router: true or backend.engine: sim")
    return worker.url


def _host_path(proc: ProcessSpec, path: str, run_dir: Path) -> Path:
    """A path as `proc` sees it -> the same path on the agent's host."""
    if proc.container and (path == CONTAINER_LOGS or path.startswith(CONTAINER_LOGS + "/")):
        return run_dir / path[len(CONTAINER_LOGS):].lstrip("/")
    return Path(path)


def _worker_sees_logs(proc: ProcessSpec, run_dir: Path) -> str:
    return CONTAINER_LOGS if proc.container else str(run_dir)


def nsys_output(proc: ProcessSpec) -> str | None:
    """The `-o` of an `nsys profile ...` wrapped command, or None if the command is not wrapped."""
    cmd = proc.command
    if len(cmd) < 4 or cmd[1] != "profile":  # `NSYS profile [options] -o FILE command...`
        return None
    for i, arg in enumerate(cmd[2:-1], start=2):
        if arg in ("-o", "--output"):
            return cmd[i + 1]
        if arg.startswith("--output="):
            return arg.split("=", 1)[1]
    return None


def profile_targets(plan: Plan, profiling_type: str, run_dir: Path) -> list[ProfileTarget]:
    """One target per worker, prefill and decode (or aggregated) workers alike; pure."""
    run_dir = Path(run_dir)
    per_role: dict[str, int] = {}
    for w in plan.workers:
        per_role[w.role] = per_role.get(w.role, 0) + 1
    targets = []
    for w in plan.workers:
        url = control_url(plan, w)
        leader = plan.process(w.processes[0])
        role_dir = leader.env.get("SGLANG_TORCH_PROFILER_DIR") or \
            f"{_worker_sees_logs(leader, run_dir)}/profiles/{w.role}"
        out_dir = role_dir if per_role[w.role] == 1 else f"{role_dir}/{w.name}"
        target = ProfileTarget(worker=w.name, role=w.role, control_url=url, output_dir=out_dir,
                               host_dir=_host_path(leader, out_dir, run_dir))
        if profiling_type == "nsys":
            for name in w.processes:
                proc = plan.process(name)
                stem = nsys_output(proc)
                if stem is None:
                    raise ProfilingError(f"{name}: profiling type nsys, but the worker command is not "
                                         f"wrapped in `nsys profile -o ...` (see plan.json)")
                target.nsys.append(NsysOutput(process=name, node=proc.node,
                                              host_stem=_host_path(proc, stem, run_dir)))
        targets.append(target)
    return targets


def profile_request(profiling, target: ProfileTarget) -> dict:
    """The JSON body of start_profile (SGLang's ProfileReqInput fields)."""
    start, stop = profiling.steps(getattr(target, "role", "agg"))
    return {
        "output_dir": target.output_dir,
        "start_step": start,
        "num_steps": stop - start,
        "activities": NSYS_ACTIVITIES if profiling.type == "nsys" else TORCH_ACTIVITIES,
    }


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


# ---- trace files ------------------------------------------------------------------------------


def _is_trace_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith((".tmp", ".partial", ".lock"))


def _list_files(directory: Path) -> dict[Path, int]:
    """Regular files under `directory` (recursively; SGLang may add sub-directories) -> size."""
    out: dict[Path, int] = {}
    if not directory.is_dir():
        return out
    for p in directory.rglob("*"):
        try:
            if p.is_file() and _is_trace_name(p.name):
                out[p] = p.stat().st_size
        except OSError:
            continue
    return out


def _nsys_files(out: NsysOutput) -> dict[Path, int]:
    found: dict[Path, int] = {}
    parent, stem = out.host_stem.parent, out.host_stem.name
    if not parent.is_dir():
        return found
    for p in parent.iterdir():
        if p.name.startswith(stem + ".") and p.name.endswith(NSYS_SUFFIXES):
            try:
                found[p] = p.stat().st_size
            except OSError:
                continue
    return found


def _snapshot(targets: list[ProfileTarget]) -> dict[Path, tuple[int, float]]:
    snap: dict[Path, tuple[int, float]] = {}
    for t in targets:
        paths = list(_list_files(t.host_dir))
        for n in t.nsys:
            paths += list(_nsys_files(n))
        for p in paths:
            try:
                st = p.stat()
                snap[p] = (st.st_size, st.st_mtime)
            except OSError:
                pass
    return snap


def _new(files: dict[Path, int], before: dict[Path, tuple[int, float]]) -> dict[Path, int]:
    out = {}
    for p, size in files.items():
        old = before.get(p)
        if old is None:
            out[p] = size
            continue
        try:
            if p.stat().st_mtime != old[1] or size != old[0]:
                out[p] = size
        except OSError:
            pass
    return out


def collect_traces(targets: list[ProfileTarget], before: dict[Path, tuple[int, float]]
                   ) -> tuple[dict[Path, int], list[str]]:
    """(new trace files -> size, descriptions of targets that have none yet)."""
    files: dict[Path, int] = {}
    missing: list[str] = []
    for t in targets:
        if t.nsys:
            for n in t.nsys:
                got = {p: s for p, s in _new(_nsys_files(n), before).items() if s > 0}
                if not got:
                    missing.append(f"{t.worker} (role {t.role}) on {n.node}: no {n.host_stem.name}.nsys-rep "
                                   f"in {n.host_stem.parent}")
                files.update(got)
        else:
            got = {p: s for p, s in _new(_list_files(t.host_dir), before).items() if s > 0}
            if not got:
                missing.append(f"{t.worker} (role {t.role}): no trace in {t.host_dir}")
            files.update(got)
    return files, missing


async def wait_for_traces(targets: list[ProfileTarget], before: dict[Path, tuple[int, float]], *,
                          deadline_s: float, settle_s: float = SETTLE_S, poll_s: float = POLL_S,
                          hint: str = "see the worker logs in logs/") -> list[Path]:
    """Every target has at least one new non-empty file and no file changed for `settle_s`."""
    start = time.monotonic()
    last: dict[Path, int] | None = None
    stable_since = start
    while True:
        files, missing = collect_traces(targets, before)
        now = time.monotonic()
        if files != last:
            last, stable_since = files, now
        if not missing and now - stable_since >= settle_s:
            return sorted(files)
        if now - start > deadline_s:
            if missing:
                raise ProfilingError(
                    f"profiling produced no trace after {deadline_s:.0f} s for {len(missing)} of "
                    f"{_count(targets)}: " + "; ".join(missing)
                    + f" ({hint})")
            return sorted(files)  # present but still growing at the deadline: report what is there
        await anyio.sleep(poll_s)


def _count(targets: list[ProfileTarget]) -> str:
    n = sum(max(1, len(t.nsys)) for t in targets)
    return f"{n} expected trace {'source' if n == 1 else 'sources'}"


# ---- control calls -----------------------------------------------------------------------------


def _client() -> httpx.AsyncClient:
    # trust_env=False: never route through a proxy from the environment
    return httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, trust_env=False)


def _excerpt(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


async def _post(client: httpx.AsyncClient, url: str, body: dict | None) -> tuple[int | None, str]:
    try:
        r = await client.post(url, json=body) if body is not None else await client.post(url)
        return r.status_code, r.text
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"


async def start_profiles(targets: list[ProfileTarget], profiling) -> None:
    """start_profile on every target concurrently; any refusal is a ProfilingError naming the worker."""
    errors: list[str] = []
    async with _client() as client:
        async def one(t: ProfileTarget) -> None:
            url = f"{t.control_url}/start_profile"
            code, text = await _post(client, url, profile_request(profiling, t))
            if code is None or not 200 <= code < 300:
                hint = ""
                if code == 404 and t.control_url.endswith("/engine"):
                    hint = (" (this Dynamo release has no SGLang profiling routes: use a newer "
                            "backend.dynamo_version, or backend.use_sglang_router: true)")
                errors.append(f"{t.worker} (role {t.role}): POST {url} -> "
                              f"{code if code is not None else 'no answer'}: {_excerpt(text)}{hint}")

        async with anyio.create_task_group() as tg:
            for t in targets:
                tg.start_soon(one, t)
    if errors:
        raise ProfilingError("start_profile failed for " + "; ".join(sorted(errors)))


async def stop_profiles(targets: list[ProfileTarget]) -> dict[str, str]:
    """stop_profile on every target; returns worker -> problem for the ones that did not answer 2xx.

    Not fatal: SGLang stops by itself after num_steps and then refuses stop_profile.
    """
    problems: dict[str, str] = {}
    async with _client() as client:
        async def one(t: ProfileTarget) -> None:
            code, text = await _post(client, f"{t.control_url}/stop_profile", None)
            if code is None or not 200 <= code < 300:
                problems[t.worker] = f"{code if code is not None else 'no answer'}: {_excerpt(text, 160)}"

        async with anyio.create_task_group() as tg:
            for t in targets:
                tg.start_soon(one, t)
    return problems


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
    from .benchmark_phase import run_loadgen, tokenizer_dir

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
    before = _snapshot(targets)
    deadline_s = float(getattr(profiling, "trace_timeout_s", None) or TRACE_TIMEOUT_S)

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
    hint = "see the worker logs in logs/"
    if hasattr(profiling, "trace_timeout_s"):
        hint += "; raise profiling.trace_timeout_s if traces are slow to write"
    paths = await wait_for_traces(targets, before, deadline_s=deadline_s, hint=hint)
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
