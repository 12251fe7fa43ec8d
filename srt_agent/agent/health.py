"""Readiness: every worker's /health, then frontend/router registration, then one smoke request."""

from __future__ import annotations

import json
import time

import anyio
import httpx

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
                                    f"{', '.join(sorted(pending))} (raise health.worker_timeout_s if startup is slow)")
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


def count_expected(plan: Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in plan.workers:
        counts[w.role] = counts.get(w.role, 0) + 1
    return counts


async def wait_registered(plan: Plan, status: StatusWriter, *, deadline_s: float) -> dict:
    """Frontends (Dynamo /health instances) or the router (/workers) see every worker."""
    expected = count_expected(plan)
    start = time.monotonic()
    last: dict = {}
    async with http_client() as client:
        while True:
            ok = True
            if plan.endpoint.kind == "router":
                router = plan.by_kind("router")[0]
                try:
                    r = await client.get(f"http://{router.address}:{router.port}/workers")
                    last = {"router_workers": _router_worker_count(r.json())} if r.status_code == 200 else {}
                except (httpx.HTTPError, json.JSONDecodeError):
                    last = {}
                ok = last.get("router_workers", 0) >= len(plan.workers)
            else:
                from ..dynamo import parse_frontend_health

                last = {}
                for f in plan.frontends:
                    try:
                        r = await client.get(f"http://{f.address}:{f.port}/health")
                        health = parse_frontend_health(r.content)
                    except httpx.HTTPError:
                        health = None
                    last[f.name] = {"prefill": health.prefill, "decode": health.decode} if health else {}
                    want_decode = expected.get("decode", 0) + expected.get("agg", 0)
                    if health is None or not health.has(prefill=expected.get("prefill", 0), decode=want_decode):
                        ok = False
            status.update(message=f"registration: {json.dumps(last, sort_keys=True)}")
            if ok:
                return last
            if time.monotonic() - start > deadline_s:
                raise HealthTimeout(f"workers not registered with the {plan.endpoint.kind} after {deadline_s:.0f} s: "
                                    f"expected {expected}, saw {last}")
            await anyio.sleep(POLL_S)


def _router_worker_count(data) -> int:
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        for key in ("workers", "urls"):
            if isinstance(data.get(key), list):
                return len(data[key])
        total = 0
        for key in ("prefill", "decode", "prefill_urls", "decode_urls", "regular"):
            if isinstance(data.get(key), list):
                total += len(data[key])
        if "stats" in data and isinstance(data["stats"], dict):
            n = data["stats"].get("total_workers")
            if isinstance(n, int):
                return max(total, n)
        return total
    return 0


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
