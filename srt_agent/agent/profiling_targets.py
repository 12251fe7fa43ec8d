"""Profiling targets (pure) and the start_profile/stop_profile calls of the profiling phase.

One target per worker: its leader (SGLang's tokenizer manager there forwards the request to every
rank, on every node of the worker). Where its control endpoint is, the worker's engine says
(srt_agent/engines: `profile_control_url`); where its traces land, the plan recorded on the
leader's ProcessSpec (`profile_dir` for torch, `nsys_output` for each nsys-wrapped node).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio
import httpx

from ..engines import engine_of
from ..errors import ProfilingError
from ..plan import CONTAINER_LOGS, Plan, ProcessSpec, WorkerSpec

REQUEST_TIMEOUT_S = 120.0  # start_profile waits for every rank's scheduler to answer
TORCH_ACTIVITIES = ["CPU", "GPU"]
NSYS_ACTIVITIES = ["CUDA_PROFILER"]


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
    not_found_hint: str = ""  # the engine's explanation of a 404 from start_profile


def control_url(plan: Plan, worker: WorkerSpec) -> str:
    """Base URL of the worker leader's profiling control endpoints (the engine says where)."""
    return engine_of(plan).profile_control_url(plan, worker)


def _host_path(proc: ProcessSpec, path: str, run_dir: Path) -> Path:
    """A path as `proc` sees it -> the same path on the agent's host."""
    if proc.container and (path == CONTAINER_LOGS or path.startswith(CONTAINER_LOGS + "/")):
        return run_dir / path[len(CONTAINER_LOGS):].lstrip("/")
    return Path(path)


def _worker_sees_logs(proc: ProcessSpec, run_dir: Path) -> str:
    return CONTAINER_LOGS if proc.container else str(run_dir)


def nsys_output(proc: ProcessSpec) -> str | None:
    """The `-o` the plan gave the `nsys profile` wrapper of `proc`, or None if the command is not wrapped."""
    return proc.nsys_output


def profile_targets(plan: Plan, profiling_type: str, run_dir: Path) -> list[ProfileTarget]:
    """One target per worker, prefill and decode (or aggregated) workers alike; pure."""
    run_dir = Path(run_dir)
    per_role: dict[str, int] = {}
    for w in plan.workers:
        per_role[w.role] = per_role.get(w.role, 0) + 1
    engine = engine_of(plan)
    targets = []
    for w in plan.workers:
        url = control_url(plan, w)
        leader = plan.process(w.processes[0])
        role_dir = leader.profile_dir or f"{_worker_sees_logs(leader, run_dir)}/profiles/{w.role}"
        out_dir = role_dir if per_role[w.role] == 1 else f"{role_dir}/{w.name}"
        target = ProfileTarget(worker=w.name, role=w.role, control_url=url, output_dir=out_dir,
                               host_dir=_host_path(leader, out_dir, run_dir), not_found_hint=engine.profile_404_hint)
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
                hint = t.not_found_hint if code == 404 else ""
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
