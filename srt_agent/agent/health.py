"""Readiness: every worker's /health, then frontend/router registration, then one smoke request."""

from __future__ import annotations

import json
import time

import anyio
import httpx

from ..engines import engine_of
from ..engines.base import count_expected
from ..errors import HealthTimeout
from ..plan import Plan, ProcessSpec
from .status import StatusWriter, now

POLL_S = 0.5


def http_client(timeout: float = 5.0) -> httpx.AsyncClient:
    # trust_env=False: never route through a proxy from the environment
    return httpx.AsyncClient(timeout=timeout, trust_env=False)


async def _healthy(client: httpx.AsyncClient, url: str) -> bool:
    try:
        r = await client.get(url)
        return r.status_code == 200
    except httpx.HTTPError:
        return False


async def _check_into(results: dict[str, bool], client: httpx.AsyncClient, name: str, url: str) -> None:
    results[name] = await _healthy(client, url)


def timeout_key(procs) -> str:
    """The health.* deadline that governs these processes (main.py passes the matching deadline)."""
    kinds = {p.kind for p in procs}
    if kinds and kinds <= {"nats", "etcd"}:
        return "health.infra_timeout_s"
    if kinds and kinds <= {"worker"}:
        return "health.worker_timeout_s"
    return "health.frontend_timeout_s"


async def wait_processes_healthy(procs: list[ProcessSpec], status: StatusWriter, *, deadline_s: float,
                                 what: str) -> None:
    """Poll every process's health URL until all answer 200, reporting 'k of n ready'."""
    pending = {p.name: p for p in procs if p.health_url}
    total = len(pending)
    start = time.monotonic()
    async with http_client() as client:
        while pending:
            results: dict[str, bool] = {}
            async with anyio.create_task_group() as tg:
                for name, p in pending.items():
                    tg.start_soon(_check_into, results, client, name, p.health_url)
            for name, ok in results.items():
                if ok:
                    del pending[name]
                    status.component(name, health="healthy", state="ready", ready_at=now())
            status.update(message=f"{what}: {total - len(pending)} of {total} ready")
            if not pending:
                break
            if time.monotonic() - start > deadline_s:
                raise HealthTimeout(f"{what}: {len(pending)} of {total} not ready after {deadline_s:.0f} s: "
                                    f"{', '.join(sorted(pending))} (raise {timeout_key(pending.values())} "
                                    f"if startup is slow)")
            await anyio.sleep(POLL_S)


def record_dynamo_installs(run_dir, procs: list[ProcessSpec], status: StatusWriter) -> None:
    """Copy what each process's Dynamo install added or replaced (dynamo/<name>.json) into status.json."""
    from pathlib import Path

    for p in procs:
        path = Path(run_dir) / "dynamo" / f"{p.name}.json"
        if not p.dynamo_version or not path.is_file():
            continue
        try:
            rec = json.loads(path.read_text())
        except ValueError:
            continue
        status.component(p.name, dynamo={k: rec.get(k) for k in ("version", "cache", "env", "added", "replaced")})
        if rec.get("replaced"):
            status.event("dynamo_replaced", component=p.name, packages=rec["replaced"])


async def wait_registered(plan: Plan, status: StatusWriter, *, deadline_s: float) -> dict:
    """Frontends (Dynamo /health instances) or the router (/workers) see every worker: the engine's check."""
    engine = engine_of(plan)
    start = time.monotonic()
    async with http_client() as client:
        while True:
            ok, last = await engine.registered(client, plan)
            status.update(message=f"registration: {json.dumps(last, sort_keys=True)}")
            if ok:
                return last
            if time.monotonic() - start > deadline_s:
                raise HealthTimeout(f"workers not registered with the {plan.endpoint.kind} after {deadline_s:.0f} s: "
                                    f"expected {count_expected(plan)}, saw {last} "
                                    f"(raise health.frontend_timeout_s if registration is slow)")
            await anyio.sleep(POLL_S)


async def smoke_request(plan: Plan, *, deadline_s: float = 120.0) -> dict:
    """One completion through the public endpoint; it must return generated tokens."""
    body = {"model": plan.served_model_name, "prompt": "The capital of France is", "max_tokens": 8,
            "temperature": 0, "stream": False}
    start = time.monotonic()
    last_error = "no answer"
    async with http_client(timeout=60) as client:
        while time.monotonic() - start < deadline_s:
            try:
                r = await client.post(f"{plan.endpoint.url}/v1/completions", json=body)
                if r.status_code == 200:
                    data = r.json()
                    tokens = (data.get("usage") or {}).get("completion_tokens", 0)
                    if tokens > 0:
                        return {"completion_tokens": tokens, "text": data["choices"][0].get("text", "")}
                    last_error = f"0 tokens returned: {r.text[:200]}"
                else:
                    last_error = f"HTTP {r.status_code}: {r.text[:200]}"
            except (httpx.HTTPError, json.JSONDecodeError, KeyError, IndexError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            await anyio.sleep(1.0)
    raise HealthTimeout(f"smoke request through {plan.endpoint.url} failed: {last_error}")
