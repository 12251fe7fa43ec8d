"""The one srun builder: every srun command line the agent runs comes from here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .launch_script import process_paths

if TYPE_CHECKING:
    from .plan import Plan, ProcessSpec


def srun_command(
    command: Sequence[str],
    *,
    nodes: Sequence[str],
    job_name: str,
    tasks_per_node: int = 1,
    container_image: str | None = None,
    container_mounts: Sequence[str] = (),
    overlap: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """srun with explicit -N/-n/--nodelist (steps inherit the job's task count otherwise)."""
    if not nodes:
        raise ValueError("srun needs at least one node")
    argv = ["srun", f"--nodes={len(nodes)}", f"--ntasks={len(nodes) * tasks_per_node}",
            f"--ntasks-per-node={tasks_per_node}", f"--nodelist={','.join(nodes)}", f"--job-name={job_name}",
            "--kill-on-bad-exit=1"]
    if overlap:
        argv.append("--overlap")
    if container_image:
        argv += [f"--container-image={container_image}", "--no-container-mount-home", "--no-container-entrypoint"]
        if container_mounts:
            argv.append(f"--container-mounts={','.join(container_mounts)}")
    argv += list(extra)
    argv += list(command)
    return argv


def process_launch_command(plan: Plan, proc: ProcessSpec, script: str, *, executor: str) -> list[str]:
    """The argv that starts one planned process: its srun step (pyxis flags when the process runs in
    the container), or `bash SCRIPT` for the local executor. Launchers and dry-run both call this."""
    if executor == "local":
        return ["bash", script]
    image = plan.container_image if proc.container else None
    return srun_command(["bash", script], nodes=[proc.node], job_name=step_name(proc), container_image=image,
                        container_mounts=plan.container_mounts if image else (),
                        extra=plan.worker_srun_options if proc.kind == "worker" else ())


def step_name(proc: ProcessSpec) -> str:
    return f"srt-{proc.name}"


def with_launch_commands(plan: Plan, *, executor: str, run_dir: str) -> Plan:
    """A copy of `plan` whose processes carry `launch`, the argv their launcher will run
    (scripts at RUN_DIR/launch/<name>.sh, or /logs/launch/<name>.sh inside the container)."""
    procs = [p.model_copy(update={"launch": process_launch_command(
        plan, p, process_paths(plan, p, run_dir)["script"], executor=executor)}) for p in plan.processes]
    return plan.model_copy(update={"processes": procs, "executor": executor})
