"""A sweep in one allocation (`sweep.mode: allocation`): the members run one after another, each
with the ordinary agent (`run_agent`) on its own run directory `SWEEP_DIR/<member>/` with its own
status.json and ledger. Each member's workers, frontends and router are stopped before the next
member's start; a requeued or resumed job skips finished members and, through the member's
ledger, finished benchmark points.

NATS and etcd (Dynamo frontends) are started once, from the plan of the first member that needs
them, and kept up for every later member whose plan has them at the same addresses (the ports
come first from the job's port block, so they match); their status is SWEEP_DIR/status.json and
their logs are in that first member's run directory.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from ..atomic import write_json_atomic
from ..errors import ComponentFailed, SrtError
from ..node_state import remove_state_dir
from ..plan import NodeInfo, PlanInputs, make_plan
from ..secrets import SECRETS_ENV_VAR
from .health import http_client, wait_processes_healthy
from .run_context import build_plan, load_context, render_scripts
from .status import StatusWriter, now
from .supervisor import Supervisor

# run_agent of agent/main.py: a member runs with the ordinary agent (passed in, so the two do not
# import each other)
RunMember = Callable[..., Awaitable[int]]


def member_finished(member_dir: Path) -> bool:
    """The member's work is done: its ledger has the benchmark (or profiling) phase."""
    try:
        ledger = json.loads((member_dir / "ledger.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool({"benchmark", "profiling"} & set(ledger.get("phases", {})))


def _log(message: str) -> None:
    print(f"[srt-agent] sweep: {message}", file=sys.stderr, flush=True)


class SharedInfra:
    """NATS and etcd started once for the whole sweep."""

    def __init__(self, sweep_dir: Path, name: str) -> None:
        self.sweep_dir = sweep_dir
        self.name = name
        self.sup = None
        self.key: tuple = ()
        self.failure: ComponentFailed | None = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.sup.order) if self.sup else frozenset()

    async def ensure(self, tg, member_dir: Path) -> frozenset[str]:
        """Start NATS/etcd from this member's plan if none runs; names of the ones it may share."""
        secrets = os.environ.get(SECRETS_ENV_VAR)
        ctx = load_context(member_dir)
        if secrets is not None:
            os.environ[SECRETS_ENV_VAR] = secrets
        if self.sup is not None:
            return self.names if self._key(ctx, self.sup.plan.nodes) == self.key else frozenset()
        placeholder = [NodeInfo(name=f"n{i}", address=f"n{i}") for i in range(ctx.resolved.total_nodes)]
        if self._key(ctx, placeholder)[0] is None:  # no NATS/etcd in this member (sglang router)
            return frozenset()
        nodes = await ctx.launcher.discover_nodes(ctx.resolved.total_nodes)
        plan = build_plan(ctx, nodes)
        infra = plan.by_kind("nats") + plan.by_kind("etcd")
        if not infra:
            return frozenset()
        ctx = render_scripts(ctx, plan)
        status = StatusWriter(self.sweep_dir, job_id=ctx.job_id, name=self.name, executor=ctx.launcher.kind)
        status.update(state="running", message="NATS and etcd for every member of the sweep")

        def on_failure(failure: ComponentFailed) -> None:
            self.failure = self.failure or failure

        self.sup = Supervisor(ctx.launcher, status, ctx.plan, member_dir, ctx.job.health.shutdown_grace_s,
                              on_failure)
        for p in infra:
            await self.sup.start(tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])
        await wait_processes_healthy(infra, status, deadline_s=ctx.job.health.infra_timeout_s, what="infra")
        self.key = self._key(ctx, nodes)
        _log(f"NATS {ctx.plan.nats_url} and etcd {ctx.plan.etcd_url} up for the sweep")
        return self.names

    @staticmethod
    def _key(ctx, nodes) -> tuple:
        """What a member needs of NATS/etcd: their URLs on these nodes and NATS's settings."""
        given = [NodeInfo(name=n.name, address=n.address) for n in nodes]
        given += [NodeInfo(name=f"n{i}", address=f"n{i}") for i in range(len(given), ctx.resolved.total_nodes)]
        plan = make_plan(ctx.resolved, PlanInputs(
            job_id=ctx.job_id, nodes=given,
            log_dir=str(ctx.run_dir), srtctl_root=str(ctx.srtctl_root), host_python=sys.executable,
            configs_dir="", setup_script=None))
        return (plan.nats_url, plan.etcd_url, ctx.job.backend.nats_max_payload)

    async def forget_member(self) -> None:
        """Between members: delete every etcd key, so the next member's frontends do not see the
        previous member's worker registrations (leases outlive a stopped worker by their TTL)."""
        etcd_url = self.key[1] if self.sup is not None and len(self.key) > 1 else None
        if not etcd_url:
            return
        try:
            async with http_client() as client:  # etcd v3 JSON API: [\0, \0) is every key
                r = await client.post(f"{etcd_url}/v3/kv/deleterange", json={"key": "AA==", "range_end": "AA=="})
            _log(f"etcd: previous member's keys deleted ({r.json().get('deleted', 0)})")
        except Exception as exc:  # the next member still works once the leases expire
            _log(f"etcd: could not delete the previous member's keys: {exc}")

    async def stop(self) -> None:
        if self.sup is not None:
            await self.sup.stop_all()
            if self.sup.plan is not None:  # members leave the shared state alone (agent/main.py)
                remove_state_dir(self.sup.plan.state_dir)
            self.sup.status.update(state="succeeded" if self.failure is None else "failed")


async def run_sweep(sweep_dir: Path, run_agent: RunMember) -> int:
    """run_agent(member_dir, shared=..., requeue=False) runs one member (agent/main.py's)."""
    info = json.loads((sweep_dir / "sweep.json").read_text())
    secrets = os.environ.get(SECRETS_ENV_VAR)  # every member's agent takes them from the environment
    progress_path = sweep_dir / "sweep_progress.json"
    infra = SharedInfra(sweep_dir, info.get("name") or info["sweep_id"])
    worst = 0
    total = len(info["members"])
    async with anyio.create_task_group() as tg:
        try:
            for i, member in enumerate(info["members"]):
                member_dir = sweep_dir / member["name"]
                progress = {"updated_at": now(), "current": member["name"], "index": i, "total": total}
                if member_finished(member_dir):
                    _log(f"member {i + 1}/{total} {member['name']}: already finished, skipped")
                    continue
                write_json_atomic(progress_path, progress)
                _log(f"member {i + 1}/{total} {member['name']}: starting")
                try:
                    shared = await infra.ensure(tg, member_dir)
                except SrtError as exc:
                    _log(f"NATS/etcd for the sweep could not start ({exc}); the member starts its own")
                    await infra.stop()
                    infra.sup, shared = None, frozenset()
                if secrets is not None:
                    os.environ[SECRETS_ENV_VAR] = secrets
                code = await run_agent(member_dir, shared=shared, requeue=False)  # no self-requeue mid-sweep
                await infra.forget_member()
                _log(f"member {member['name']}: exit code {code}")
                if code in (130, 143):  # stopped by a signal (scancel, time limit): resume continues here
                    write_json_atomic(progress_path, {**progress, "stopped": True})
                    return code
                worst = worst or code
                if infra.failure is not None:
                    _log(f"the sweep's {infra.failure.component} exited; stopping the sweep")
                    return worst or 1
            write_json_atomic(progress_path, {"updated_at": now(), "current": None, "done": True})
            return worst
        finally:
            await infra.stop()
            tg.cancel_scope.cancel()
