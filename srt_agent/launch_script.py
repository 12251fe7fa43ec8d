"""Per-process launch scripts (templates/process.sh.j2): environment, setup script, Dynamo, exec."""

from __future__ import annotations

from pathlib import Path

from .plan import CONTAINER_CONFIGS, CONTAINER_LOGS, CONTAINER_SRTCTL, Plan, ProcessSpec
from .secrets import split_env
from .templating import render


def process_paths(plan: Plan, proc: ProcessSpec, log_dir: str) -> dict[str, str]:
    """Paths as the process sees them (inside the container they live under /logs and /configs)."""
    base = CONTAINER_LOGS if proc.container else log_dir
    return {"log": f"{base}/logs/{proc.log}", "script": f"{base}/launch/{proc.name}.sh", "base": base}


def render_launch_script(plan: Plan, proc: ProcessSpec, *, log_dir: str, configs_dir: str,
                         setup_script: str | None, dynamo_cache: str,
                         bin_dir: str | None = None, srtctl_root: str | None = None) -> tuple[str, dict[str, str]]:
    """(script text, secret environment to pass through the launcher instead of the file)."""
    plain, secret = split_env(proc.env)
    paths = process_paths(plan, proc, log_dir)
    if proc.container:  # the checkout (and its .cache) is mounted at /srtctl inside the container
        dynamo_cache = f"{CONTAINER_SRTCTL}/.cache"
    setup = None
    if setup_script and proc.setup_script:
        setup = f"{CONTAINER_CONFIGS if proc.container else configs_dir}/{setup_script}"
    python = proc.python or proc.command[0]
    # the checkout (mounted at /srtctl in containers) holds srt_agent/; else this very module's directory
    root = CONTAINER_SRTCTL if proc.container else srtctl_root
    installer = f"{root}/srt_agent/dynamo_install.py" if root else str(Path(__file__).resolve().parent / "dynamo_install.py")
    image = plan.container_image if plan is not None and proc.container and plan.container_image else f"host:{python}"
    text = render(
        "process.sh.j2", name=proc.name, kind=proc.kind, node=proc.node, log=paths["log"],
        env=sorted(plain.items()), secret_env=sorted(secret), setup_script=setup,
        dynamo_version=proc.dynamo_version, dynamo_cache=dynamo_cache, dynamo_installer=installer,
        dynamo_image=image, dynamo_record=f"{paths['base']}/dynamo/{proc.name}.json", python=python,
        python_index=proc.command.index(python) if python in proc.command else None, command=proc.command,
        bin_dir=bin_dir if proc.kind in ("nats", "etcd") and not proc.container else None)
    return text, secret
