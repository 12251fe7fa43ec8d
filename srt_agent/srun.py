"""The one srun builder: every srun command line the agent runs comes from here."""

from __future__ import annotations

from collections.abc import Sequence


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
