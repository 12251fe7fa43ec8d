"""A launcher whose processes are scripted stand-ins inside the agent's own process: the test seam.

Each planned process gets a `Script`: when it becomes healthy, which log lines it prints and when,
when it exits by itself and with which code, whether it ignores SIGTERM and how long its graceful
stop takes. A process with a port serves real HTTP on its planned address (aiohttp): 503 until
healthy, then 200 on its health path and the routes the agent asks of its kind (the router's
/workers, a Dynamo frontend's /health with every worker registered, /v1/completions on the
endpoint), so the whole agent runs its phases against it in well under a second, no OS process
started. `run_once` answers from a function the test gives (the preflight's `--help`).

    async with ScriptedLauncher({"decode-0": Script(exit_at=1.0, exit_code=3)}) as launcher:
        code = await run_agent(run_dir, launcher)
    launcher.timeline()  # [(seconds, process, "start" | "healthy" | "SIGTERM" | "SIGKILL" | "exit N"), ...]

asyncio only (aiohttp); the scripted processes live as long as the `async with` block.
"""

from __future__ import annotations

import fnmatch
import math
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from aiohttp import web

from ..dynamo import DECODE_COMPONENT, PREFILL_COMPONENT
from ..errors import LaunchError
from ..plan import NodeInfo, Plan, ProcessSpec
from .launchers import Handle, Launcher, OnceResult

Reply = Any  # a JSON-able body, or a callable (plan, proc) -> JSON-able body


@dataclass(frozen=True)
class Script:
    """How one scripted process behaves; times are seconds after its start."""

    healthy_after: float | None = 0.0  # None: never healthy
    exit_at: float | None = None  # None: runs until stopped
    exit_code: int = 0
    ignore_sigterm: bool = False
    stop_after: float = 0.0  # from SIGTERM to exit: the length of its graceful shutdown
    sigterm_exit_code: int = -signal.SIGTERM  # what a stop by SIGTERM returns (asyncio's convention)
    log: Sequence[str | tuple[float, str]] = ()
    routes: Mapping[str, Reply] = field(default_factory=dict)  # path -> reply, over the kind's defaults
    start_error: str | None = None  # Launcher.start raises LaunchError with this message

    def log_lines(self) -> list[tuple[float, str]]:
        return sorted(((0.0, x) if isinstance(x, str) else (float(x[0]), x[1]) for x in self.log),
                      key=lambda t: t[0])


def _completion(plan: Plan, proc: ProcessSpec) -> dict:
    return {"id": "scripted", "object": "text_completion", "model": plan.served_model_name,
            "choices": [{"index": 0, "text": " Paris.", "finish_reason": "length"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}


def _frontend_health(plan: Plan, proc: ProcessSpec) -> dict:
    """Dynamo's frontend /health listing every planned worker's `generate` instance."""
    comp = {"prefill": PREFILL_COMPONENT}
    return {"status": "healthy", "instances": [
        {"component": comp.get(w.role, DECODE_COMPONENT), "endpoint": "generate", "namespace": "scripted",
         "instance_id": i} for i, w in enumerate(plan.workers)]}


def default_routes(kind: str) -> dict[str, Reply]:
    """What the agent asks of a healthy process of this kind (health.py)."""
    if kind == "router":
        return {"/workers": lambda plan, proc: [w.url for w in plan.workers], "/v1/completions": _completion}
    if kind == "frontend":
        return {"/health": _frontend_health, "/v1/completions": _completion}
    if kind == "nginx":
        return {"/v1/completions": _completion}
    return {}


@dataclass
class ScriptedHandle(Handle):
    script: Script = field(default_factory=Script)
    healthy: bool = False
    signals: list[str] = field(default_factory=list)
    _launcher: ScriptedLauncher | None = None
    _done: anyio.Event = field(default_factory=anyio.Event)
    _wake: anyio.Event = field(default_factory=anyio.Event)
    _termed_at: float | None = None
    _killed: bool = False

    async def wait(self) -> int:
        await self._done.wait()
        assert self.returncode is not None
        return self.returncode

    def signal_group(self, sig: int) -> None:
        if self._done.is_set():
            return
        name = signal.Signals(sig).name
        self.signals.append(name)
        if self._launcher is not None:
            self._launcher.record(self.name, name)
        if sig == signal.SIGKILL:
            self._killed = True
        elif sig == signal.SIGTERM and self._termed_at is None:
            self._termed_at = anyio.current_time()
        self._wake.set()


class ScriptedLauncher(Launcher):
    """scripts: process name, fnmatch pattern of names ("decode-*") or kind ("worker") -> Script;
    the first exact name, then the first matching pattern, then the kind, else `default`.
    once(cmd, node) -> OnceResult, or a str (the output of a successful run): what run_once returns."""

    kind = "scripted"
    os_processes = False

    def __init__(self, scripts: Mapping[str, Script] | None = None, *, default: Script | None = None,
                 once: Callable[[list[str], str], OnceResult | str] | None = None, nodes: int | None = None,
                 address: str = "127.0.0.1") -> None:
        self.scripts = dict(scripts or {})
        self.default = default or Script()
        self.once = once
        self.node_count = nodes
        self.address = address
        self.handles: dict[str, ScriptedHandle] = {}
        self.once_calls: list[tuple[list[str], str, str | None]] = []
        self.events: list[tuple[float, str, str]] = []
        self._tg: Any = None
        self._t0 = 0.0

    async def __aenter__(self) -> ScriptedLauncher:
        self._t0 = anyio.current_time()
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        """Ends every scripted process still running (as if SIGKILLed); an error of the block
        propagates as it is, not wrapped in the task group's exception group."""
        tg, self._tg = self._tg, None
        tg.cancel_scope.cancel()
        await tg.__aexit__(None, None, None)

    def record(self, process: str, what: str) -> None:
        self.events.append((round(anyio.current_time() - self._t0, 3), process, what))

    def timeline(self, what: str | None = None) -> list[tuple[float, str, str]]:
        """Recorded events, or only those whose text starts with `what` ("SIGTERM", "exit")."""
        return [e for e in self.events if what is None or e[2].startswith(what)]

    def script_for(self, proc: ProcessSpec) -> Script:
        if proc.name in self.scripts:
            return self.scripts[proc.name]
        for key, script in self.scripts.items():
            if any(c in key for c in "*?[") and fnmatch.fnmatchcase(proc.name, key):
                return script
        return self.scripts.get(proc.kind, self.default)

    async def discover_nodes(self, count: int) -> list[NodeInfo]:
        if self.node_count is not None and count > self.node_count:
            raise LaunchError(f"the allocation has {self.node_count} nodes, the plan needs {count}")
        return [NodeInfo(name=f"node{i}", address=self.address) for i in range(count)]

    async def run_once(self, cmd, node, *, container_image=None, container_mounts=(), timeout=600.0,
                       name="srt-once") -> OnceResult:
        self.once_calls.append((list(cmd), node, container_image))
        if self.once is None:
            return OnceResult(127, "scripted launcher: no run_once answer scripted", list(cmd))
        res = self.once(list(cmd), node)
        return OnceResult(0, res, list(cmd)) if isinstance(res, str) else res

    async def start(self, plan: Plan, proc: ProcessSpec, script: Path, secret_env: dict[str, str],
                    run_dir: Path) -> Handle:
        if self._tg is None:
            raise LaunchError(f"cannot start {proc.name}: enter the ScriptedLauncher (`async with`) first")
        behaviour = self.script_for(proc)
        if behaviour.start_error is not None:
            raise LaunchError(f"cannot start {proc.name}: {behaviour.start_error}")
        handle = ScriptedHandle(name=proc.name, log=run_dir / "logs" / f"{proc.name}.scripted.log",
                                script=behaviour, _launcher=self)
        self.handles[proc.name] = handle
        self.record(proc.name, "start")
        server = await self._serve(handle, plan, proc) if proc.port is not None else None
        self._tg.start_soon(self._life, handle, proc, run_dir, server)
        return handle

    async def _serve(self, handle: ScriptedHandle, plan: Plan, proc: ProcessSpec) -> web.AppRunner | str:
        """The process's HTTP server on its planned address, or why it could not bind."""
        routes = {**default_routes(proc.kind), **handle.script.routes}

        async def answer(request: web.Request) -> web.StreamResponse:
            if not handle.healthy:
                return web.json_response({"error": "starting"}, status=503)
            reply = routes.get(request.path)
            if reply is None:
                if request.path == proc.health_path:
                    return web.json_response({"status": "ok"})
                return web.json_response({"error": f"no route {request.path}"}, status=404)
            return web.json_response(reply(plan, proc) if callable(reply) else reply)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        try:
            await web.TCPSite(runner, proc.address, proc.port).start()
        except OSError as exc:
            await runner.cleanup()
            return f"cannot listen on {proc.address}:{proc.port}: {exc}"
        return runner

    async def _life(self, handle: ScriptedHandle, proc: ProcessSpec, run_dir: Path,
                    server: web.AppRunner | str | None) -> None:
        t0 = anyio.current_time()
        log = run_dir / "logs" / proc.log
        code = -signal.SIGKILL  # if the launcher's block ends first
        try:
            if isinstance(server, str):  # like a real server that cannot bind: says so and exits 1
                _append(log, server)
                code = 1
                return
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._print, handle, log, t0)
                if handle.script.healthy_after is not None:
                    tg.start_soon(self._become_healthy, handle, t0 + handle.script.healthy_after)
                code = await self._until_exit(handle, t0)
                tg.cancel_scope.cancel()
        finally:
            handle.healthy = False
            if isinstance(server, web.AppRunner):
                with anyio.CancelScope(shield=True):
                    await server.cleanup()
            handle.returncode = code
            self.record(proc.name, f"exit {code}")
            _append(handle.log, f"scripted process {proc.name} exited with {code}")
            handle._done.set()

    async def _print(self, handle: ScriptedHandle, log: Path, t0: float) -> None:
        _append(handle.log, f"scripted process {handle.name} started")
        for at, line in handle.script.log_lines():
            await anyio.sleep_until(t0 + at)
            _append(log, line)

    async def _become_healthy(self, handle: ScriptedHandle, at: float) -> None:
        await anyio.sleep_until(at)
        handle.healthy = True
        self.record(handle.name, "healthy")

    async def _until_exit(self, handle: ScriptedHandle, t0: float) -> int:
        script = handle.script
        deadline = t0 + script.exit_at if script.exit_at is not None else math.inf
        code = script.exit_code
        while True:
            if handle._killed:
                return -signal.SIGKILL
            if handle._termed_at is not None and not script.ignore_sigterm:
                stop_at = handle._termed_at + script.stop_after
                if stop_at < deadline:
                    deadline, code = stop_at, script.sigterm_exit_code
            with anyio.move_on_at(deadline):
                await handle._wake.wait()
                handle._wake = anyio.Event()
                continue
            return code


def _append(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(line + "\n")
