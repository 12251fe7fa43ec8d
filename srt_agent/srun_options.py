"""`slurm.srun_options`: the srun options a job may add to its worker steps (allow-list, plain values).

srt_agent/srun.py (the one srun builder) puts them on the worker steps; plan.py carries them.
"""

from __future__ import annotations

from .validation import did_you_mean

# options a job may add to its worker steps (slurm.srun_options): resources and binding of the
# step's tasks and pyxis container behaviour; node placement, task counts, names, overlap and the
# image itself are srtctl's
SRUN_EXTRA_OPTIONS = frozenset({
    "mem", "mem-per-cpu", "mem-per-gpu", "cpus-per-task", "cpus-per-gpu", "gpus-per-task", "cpu-bind",
    "mem-bind", "gpu-bind", "hint", "distribution", "mpi", "network", "cpu-freq", "gres-flags",
    "container-remap-root", "no-container-remap-root", "container-writable", "container-readonly",
    "container-workdir", "container-env", "container-save"})


def check_srun_options(options: object) -> object:
    """slurm.srun_options: allowed names, plain values (null, '' or true: a bare `--NAME`)."""
    if not isinstance(options, dict):
        return options
    out: dict[str, str | None] = {}
    for k, val in options.items():
        name = str(k).lstrip("-")
        if name not in SRUN_EXTRA_OPTIONS:
            guess = did_you_mean(name, SRUN_EXTRA_OPTIONS)
            hint = f"did you mean '{guess}'?" if guess else f"allowed: {', '.join(sorted(SRUN_EXTRA_OPTIONS))}"
            raise ValueError(f"'{k}' is not an srun option srtctl lets a job add to its worker steps ({hint})")
        if val is not None and not isinstance(val, (str, int, float, bool)):
            raise ValueError(f"the value of '{k}' must be a string, a number, true or null")
        text = None if val is None or val is True or val == "" else (
            str(val).lower() if isinstance(val, bool) else str(val))
        if text is not None and any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise ValueError(f"the value of '{k}' must not contain line breaks or control characters")
        out[name] = text
    return out


def srun_option_args(options: dict[str, str | None]) -> list[str]:
    """`--NAME=VALUE` / `--NAME` arguments (argv items: never through a shell unquoted)."""
    return [f"--{k}" if v is None else f"--{k}={v}" for k, v in options.items()]
