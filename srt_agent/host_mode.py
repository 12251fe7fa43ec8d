"""No-container jobs: `model.container: none` and the host Python that serves them (`model.python`).

With `model.container: none` every srun step runs on the node itself (srt_agent/srun.py adds no
pyxis `--container-*` option), as with srtslurm.yaml `container_runtime: none`, but for one job on
a pyxis cluster. The workers (SGLang, Dynamo) run with the Python named by `model.python`, else by
srtslurm.yaml `python`; on the SLURM executor one of them must be set (srtctl's own Python has no
SGLang), and it must be an absolute path. A dry-run cannot look at the compute nodes, so the
agent's preflight (agent/host_check.py) checks that Python on the head node before anything starts.
"""

from __future__ import annotations

from .errors import ConfigError

NO_CONTAINER = "none"  # model.container: none


def check_python_path(value: str | None) -> str | None:
    """model.python: an absolute path of a Python interpreter, without control characters."""
    if value is None:
        return None
    if not value.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"'{value}' must be the absolute path of a Python interpreter, e.g. "
                         "/opt/sglang-venv/bin/python")
    return value


def host_python(job, cluster, *, file: str | None, line_of) -> tuple[str | None, list[ConfigError]]:
    """(the Python the job's host processes use, or None for the caller's default; errors).

    Used when the job runs without a container: `model.container: none`, or none given on a
    cluster whose srtslurm.yaml says `container_runtime: none`."""
    errors: list[ConfigError] = []
    python = job.model.python or cluster.python
    chosen = job.model.container == NO_CONTAINER
    if chosen and python and not python.startswith("/"):
        errors.append(ConfigError(
            f"the host Python '{python}' (srtslurm.yaml `python`) is not an absolute path",
            file=cluster.source, key="python", value=python,
            hint="set python: /path/to/venv/bin/python in srtslurm.yaml, or model.python in the job"))
    elif chosen and not python and cluster.executor == "slurm":
        errors.append(ConfigError(
            "model.container: none runs the workers with the host's own Python, and none is named",
            file=file, line=line_of(("model", "container")), key="model.python",
            hint="set model.python: /path/to/venv/bin/python (the Python whose SGLang and Dynamo serve the "
                 f"job), or `python` in {cluster.source or 'srtslurm.yaml'}"))
    if chosen and NO_CONTAINER in cluster.containers:
        errors.append(ConfigError(
            f"srtslurm.yaml defines a container alias '{NO_CONTAINER}', and model.container: none means no container",
            file=cluster.source, key=f"containers.{NO_CONTAINER}", hint="rename that alias"))
    if chosen:
        errors += _container_only_keys(job, file=file, line_of=line_of)
    return python, errors


def _container_only_keys(job, *, file: str | None, line_of) -> list[ConfigError]:
    """extra_mount and pyxis srun options mean nothing without a container: refused, not ignored."""
    errors = []
    if job.extra_mount:
        errors.append(ConfigError("extra_mount mounts directories into the container, and model.container is none",
                                  file=file, line=line_of(("extra_mount",)), key="extra_mount",
                                  hint="remove extra_mount (host processes see the host's directories as they are)"))
    for name in job.slurm.srun_options:
        if "container" in name:
            errors.append(ConfigError(f"--{name} is a pyxis container option, and model.container is none",
                                      file=file, line=line_of(("slurm", "srun_options", name)),
                                      key=f"slurm.srun_options.{name}", hint=f"remove {name}"))
    return errors


def python_without_host_mode(job, *, file: str | None, line_of) -> list[ConfigError]:
    """model.python is only read when the job runs on the host."""
    return [ConfigError("model.python is the Python of host processes, but this job runs in a container",
                        file=file, line=line_of(("model", "python")), key="model.python",
                        value=job.model.python,
                        hint="set model.container: none to run on the host, or remove model.python")]
