"""Starts processes through a launcher, watches every one, and turns any unexpected exit of a
critical process into a job failure within moments (exit code 0 included)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from ..errors import ComponentFailed, LaunchError
from ..plan import Plan, ProcessSpec
from ..rundir import log_tail
from ..secrets import redact_text
from . import procguard
from .launchers import Handle, Launcher
from .status import StatusWriter, now

FIRST_LOG_POLL_S = 0.1


class Supervisor:
    """plan: None until the run is planned (the supervisor exists from the agent's start, so that
    teardown works whenever a phase fails); set it before the first `start`."""

    def __init__(self, launcher: Launcher, status: StatusWriter, plan: Plan | None, run_dir: Path, grace: float,
                 on_failure: Callable[[ComponentFailed], None]) -> None:
        self.launcher = launcher
        self.status = status
        self.plan = plan
        self.run_dir = run_dir
        self.grace = grace
        self.on_failure = on_failure
        self.handles: dict[str, Handle] = {}
        self.order: list[str] = []
        self.shutting_down = False
        self.failure: ComponentFailed | None = None
        self.secret_values: list[str] = []  # redacted from log tails copied into status.json
        self.pids = None  # procguard.PidRecord: pids.json of this attempt

    async def start(self, tg: TaskGroup, proc: ProcessSpec, script: Path, secret_env: dict[str, str]) -> Handle:
        if self.plan is None:
            raise LaunchError(f"supervisor: {proc.name} started before the run was planned")
        self.status.component(proc.name, kind=proc.kind, role=proc.role, node=proc.node, port=proc.port,
                              state="starting", health="unknown", started_at=now(),
                              log=f"logs/{proc.log}")
        handle = await self.launcher.start(self.plan, proc, script, secret_env, self.run_dir)
        self.handles[proc.name] = handle
        self.order.append(proc.name)
        if handle.pid is not None:  # an OS process (a scripted one is not)
            procguard.STARTED.add(handle.pid)  # ours, whichever supervisor: never an adopted orphan
            if self.pids is not None:
                self.pids.add(proc.name, handle.pid, handle.step_name)
        self.status.component(proc.name, pid=handle.pid, step=handle.step_name, state="running")
        tg.start_soon(self._watch, proc, handle)
        tg.start_soon(self._first_log_line, proc, handle)
        return handle

    async def _first_log_line(self, proc: ProcessSpec, handle: Handle) -> None:
        """Record when the process's log got its first byte (time to ready: process start)."""
        path = self.run_dir / "logs" / proc.log
        while handle.returncode is None and not self.shutting_down:
            try:
                if path.stat().st_size > 0:
                    self.status.component(proc.name, first_log_at=now())
                    return
            except FileNotFoundError:
                pass
            await anyio.sleep(FIRST_LOG_POLL_S)

    async def _watch(self, proc: ProcessSpec, handle: Handle) -> None:
        rc = await handle.wait()
        if self.shutting_down or handle.stopping:
            self.status.component(proc.name, state="stopped", exit_code=rc, exited_at=now())
            return
        tail = log_tail(self.run_dir / "logs" / proc.log) or log_tail(handle.log)
        tail = [redact_text(line, self.secret_values) for line in tail]
        self.status.component(proc.name, state="failed" if proc.critical else "exited", exit_code=rc,
                              exited_at=now(), health="down")
        if not proc.critical or self.failure is not None:
            return
        failure = ComponentFailed(proc.name, proc.node, rc, tail)
        self.failure = failure
        why = "exited early with code 0" if rc == 0 else f"exited with code {rc}"
        self.status.fail(f"{proc.name} on {proc.node} {why}", component=proc.name, node=proc.node,
                         exit_code=rc, log_tail=tail)
        self.on_failure(failure)

    def alive(self) -> list[str]:
        return [n for n in self.order if self.handles[n].returncode is None]

    def tiers(self) -> list[list[Handle]]:
        """Started processes grouped in reverse dependency order: nginx, frontends/router, workers,
        etcd, NATS (anything else first). The load generator is not supervised: it is stopped
        with the benchmark phase, before teardown."""
        kinds = {p.name: p.kind for p in (self.plan.processes if self.plan else [])}
        groups: dict[int, list[Handle]] = {}
        for name in reversed(self.order):
            rank = STOP_ORDER.get(kinds.get(name, ""), 0)
            groups.setdefault(rank, []).append(self.handles[name])
        return [groups[k] for k in sorted(groups)]

    async def stop_all(self, ordered: bool = True) -> None:
        """Stop everything within one grace period: SIGTERM tier by tier (each tier once the one
        before it has exited, or at once when the grace period is up), then SIGKILL whatever is
        still running when `grace` seconds have passed since the first SIGTERM. Not `ordered`
        (after a failure, where speed matters more than a clean order): SIGTERM to all at once."""
        self.shutting_down = True
        with anyio.CancelScope(shield=True):
            deadline = anyio.current_time() + self.grace
            tiers = self.tiers()
            if not ordered:
                tiers = [[h for tier in tiers for h in tier]]
            with anyio.move_on_after(self.grace):
                for tier in tiers:
                    await self.launcher.terminate(tier)
                    async with anyio.create_task_group() as tg:
                        for h in tier:
                            tg.start_soon(h.wait)
            rest = [h for tier in tiers for h in tier if h.returncode is None]
            if rest:
                untermed = [h for h in rest if not h.stopping]
                if untermed:  # tiers the grace period did not reach still get their SIGTERM
                    await self.launcher.terminate(untermed)
                    with anyio.move_on_after(max(0.0, min(1.0, deadline + 1.0 - anyio.current_time()))):
                        for h in untermed:
                            await h.wait()
                for h in rest:
                    if h.returncode is None:
                        self.status.component(h.name, killed_after_s=self.grace)
                async with anyio.create_task_group() as tg:
                    for h in rest:
                        if h.returncode is None:
                            tg.start_soon(self.launcher.kill, h)
            await self.launcher.cleanup()


# lower stops first
STOP_ORDER = {"nginx": 1, "frontend": 2, "router": 2, "worker": 3, "etcd": 4, "nats": 5}
