"""One launcher interface: srun steps (SLURM), local subprocesses, and scripted in-process stand-ins.

The agent never cares which one runs: it asks for nodes, starts ProcessSpecs, runs one-off
commands (`run_once`, e.g. the preflight's `--help`) and stops them. Unit tests swap the launcher
the way httpx tests swap a transport: `agent/scripted_launcher.py` plays processes that become
healthy, print log lines, exit or ignore SIGTERM at given times, without starting any.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import Process

from ..errors import LaunchError
from ..plan import NodeInfo, Plan, ProcessSpec
from ..srun import process_launch_command, srun_command, step_name
from .procguard import guarded


@dataclass
class Handle:
    """A started process: an OS process or srun step (ProcessHandle), or a scripted one."""

    name: str
    log: Path
    step_name: str | None = None
    returncode: int | None = None
    stopping: bool = False

    @property
    def pid(self) -> int | None:
        """The OS pid; None for a process that is not one (scripted)."""
        return None

    async def wait(self) -> int:
        raise NotImplementedError

    def signal_group(self, sig: int) -> None:
        raise NotImplementedError


@dataclass
class ProcessHandle(Handle):
    """A subprocess leading its own process group (the program, or its srun client)."""

    process: Process = field(kw_only=True)

    @property
    def pid(self) -> int:
        return self.process.pid

    async def wait(self) -> int:
        self.returncode = await self.process.wait()
        return self.returncode

    def signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


@dataclass(frozen=True)
class OnceResult:
    """What a one-off command (Launcher.run_once) did: exit code, stdout then stderr, the argv run."""

    returncode: int
    output: str
    argv: list[str]


class Launcher:
    kind = "base"
    os_processes = True  # False: starts no OS processes, so the agent skips procguard (pids.json, orphans)

    async def discover_nodes(self, count: int) -> list[NodeInfo]:
        raise NotImplementedError

    async def start(self, plan: Plan, proc: ProcessSpec, script: Path, secret_env: dict[str, str],
                    run_dir: Path) -> Handle:
        raise NotImplementedError

    async def run_once(self, cmd: list[str], node: str, *, container_image: str | None = None,
                       container_mounts: Sequence[str] = (), timeout: float = 600.0,
                       name: str = "srt-once") -> OnceResult:
        """Run `cmd` once on `node` (in the container when an image is given) and wait for it; never
        raises on a non-zero exit, raises LaunchError when it cannot start or outlives `timeout`.
        `name`: the srun step's job name."""
        raise NotImplementedError

    async def stop(self, handle: Handle, grace: float) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds."""
        if handle.returncode is not None:
            return
        await self.terminate([handle])
        with anyio.move_on_after(grace):
            await handle.wait()
            return
        await self.kill(handle)

    async def terminate(self, handles: list[Handle]) -> None:
        """Deliver SIGTERM to the programs of `handles` (without waiting for them)."""
        for h in handles:
            if h.returncode is None:
                h.stopping = True
                h.signal_group(signal.SIGTERM)

    async def kill(self, handle: Handle) -> None:
        handle.signal_group(signal.SIGKILL)
        with anyio.move_on_after(5):
            await handle.wait()

    async def cleanup(self) -> None:
        """Backstop after every handle was stopped."""


def _env(secret_env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **secret_env}


async def _run_once(argv: list[str], node: str, timeout: float, env: dict[str, str] | None = None) -> OnceResult:
    try:
        with anyio.fail_after(timeout):
            res = await anyio.run_process(argv, check=False, env=env)
    except TimeoutError:
        raise LaunchError(f"`{' '.join(argv)}` on {node} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise LaunchError(f"cannot run `{' '.join(argv)}` on {node}: {exc}") from exc
    return OnceResult(res.returncode, res.stdout.decode(errors="replace") + res.stderr.decode(errors="replace"),
                      list(argv))


class LocalLauncher(Launcher):
    """Subprocesses on this machine; nodes are names with address 127.0.0.1."""

    kind = "local"

    def __init__(self, node_prefix: str = "local") -> None:
        self.node_prefix = node_prefix

    async def discover_nodes(self, count: int) -> list[NodeInfo]:
        return [NodeInfo(name=f"{self.node_prefix}{i}", address="127.0.0.1") for i in range(count)]

    async def start(self, plan, proc, script, secret_env, run_dir) -> Handle:
        log = run_dir / "logs" / f"{proc.name}.launcher.log"
        with open(log, "ab") as out:
            try:
                p = await anyio.open_process(guarded(process_launch_command(plan, proc, str(script), executor="local")),
                                             stdout=out, stderr=subprocess.STDOUT,
                                             env={**_env(secret_env), "SLURMD_NODENAME": proc.node},
                                             start_new_session=True)
            except OSError as exc:
                raise LaunchError(f"cannot start {proc.name}: {exc}") from exc
        return ProcessHandle(name=proc.name, process=p, log=log)

    async def run_once(self, cmd, node, *, container_image=None, container_mounts=(), timeout=600.0,
                       name="srt-once") -> OnceResult:
        """Locally there are no containers: the command runs on this machine as it is."""
        return await _run_once(list(cmd), node, timeout, env={**os.environ, "SLURMD_NODENAME": node})


@dataclass
class SrunLauncher(Launcher):
    """One srun step per process (--overlap, explicit -N/-n/--nodelist, pyxis flags for containers)."""

    job_id: str
    nodelist: str
    address_mode: str = "probe"  # probe: first address `hostname -I` prints; loopback: 127.0.0.1
    steps: list[str] = field(default_factory=list)
    kind: str = "slurm"

    async def discover_nodes(self, count: int) -> list[NodeInfo]:
        res = await anyio.run_process(["scontrol", "show", "hostnames", self.nodelist], check=False)
        names = res.stdout.decode().split()
        if len(names) < count:
            raise LaunchError(f"the allocation has {len(names)} nodes, the plan needs {count}")
        probe = "echo \"$SLURMD_NODENAME $(hostname -I 2>/dev/null | awk '{print $1}')\""
        cmd = srun_command(["bash", "-c", probe], nodes=names, job_name="srt-node-probe")
        with anyio.fail_after(120):
            res = await anyio.run_process(cmd, check=False)
        if res.returncode != 0:
            raise LaunchError(f"node probe failed: {res.stderr.decode().strip()}")
        found: dict[str, str] = {}
        for line in res.stdout.decode().splitlines():
            parts = line.split()
            if parts:
                found[parts[0]] = parts[1] if len(parts) > 1 else ""
        missing = [n for n in names if n not in found]
        if missing:
            raise LaunchError(f"node probe got no answer from {', '.join(missing)}")
        out = []
        for n in names:
            addr = "127.0.0.1" if self.address_mode == "loopback" or not found[n] else found[n]
            out.append(NodeInfo(name=n, address=addr))
        return out

    async def start(self, plan, proc, script, secret_env, run_dir) -> Handle:
        step = step_name(proc)
        cmd = process_launch_command(plan, proc, str(script), executor="slurm")
        log = run_dir / "logs" / f"{proc.name}.srun.log"
        with open(log, "ab") as out:
            try:
                p = await anyio.open_process(guarded(cmd), stdout=out, stderr=subprocess.STDOUT, env=_env(secret_env),
                                             start_new_session=True)
            except OSError as exc:
                raise LaunchError(f"cannot start srun for {proc.name}: {exc}") from exc
        self.steps.append(step)
        return ProcessHandle(name=proc.name, process=p, log=log, step_name=step)

    async def run_once(self, cmd, node, *, container_image=None, container_mounts=(), timeout=600.0,
                       name="srt-once") -> OnceResult:
        argv = srun_command(list(cmd), nodes=[node], job_name=name, container_image=container_image,
                            container_mounts=container_mounts if container_image else ())
        try:
            return await _run_once(argv, node, timeout)
        except BaseException:  # timed out or cancelled: the step itself goes too, not only its srun client
            with anyio.CancelScope(shield=True):
                await self._scancel_steps([name])
            raise

    async def terminate(self, handles: list[Handle]) -> None:
        """SIGTERM to the steps' tasks (`scancel --signal=TERM STEP...`, one call for all): SIGTERM to
        the srun client itself would make srun cancel the step, i.e. SIGKILL its tasks. A step that
        SLURM does not list (yet) gets SIGTERM through its srun client instead."""
        todo = [h for h in handles if h.returncode is None and h.step_name]
        for h in todo:
            h.stopping = True
        found = await self._scancel_steps([h.step_name for h in todo], "TERM")  # type: ignore[misc]
        await super().terminate([h for h in handles if h.step_name not in found])

    async def kill(self, handle: Handle) -> None:
        if handle.step_name:
            await self._scancel_steps([handle.step_name], "KILL")
        await super().kill(handle)

    async def _scancel_steps(self, names: list[str], sig: str = "KILL") -> set[str]:
        """Signal the steps named `names`; the names SLURM listed."""
        if not names:
            return set()
        res = await anyio.run_process(["squeue", "-h", "-s", "-j", self.job_id, "-o", "%i %j"], check=False)
        ids: dict[str, str] = {}
        for line in res.stdout.decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] in names:
                ids[parts[1]] = parts[0]
        if ids:
            await anyio.run_process(["scancel", f"--signal={sig}", *ids.values()], check=False)
        return set(ids)

    async def cleanup(self) -> None:
        if self.steps:
            await self._scancel_steps(self.steps)
