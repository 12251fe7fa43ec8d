"""What the agent knows about its run, in two states:

- LoadedRun: read from the run directory before any node is known (resolved.json,
  metadata.json), with the launcher and the status writer;
- RunContext: a LoadedRun once planned on the discovered nodes: the plan, the rendered launch
  scripts, the secrets of each process (render_scripts makes one from a LoadedRun and a Plan).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic, write_text_atomic
from ..launch_script import process_paths, render_launch_script
from ..nginx import render_nginx_conf
from ..node_state import node_state_dir
from ..nofile import raise_soft_limit, size_nginx
from ..plan import Plan, PlanInputs, make_plan
from ..resolved import ResolvedJob
from ..rundir import configs_dir, srtctl_root
from ..secrets import SECRETS_ENV_VAR, redact_env
from ..srun import with_launch_commands
from ..templating import render
from .launchers import Launcher, LocalLauncher, SrunLauncher
from .status import StatusWriter


@dataclass(kw_only=True)
class LoadedRun:
    run_dir: Path
    resolved: ResolvedJob
    metadata: dict
    launcher: Launcher
    status: StatusWriter
    shared: frozenset[str] = frozenset()  # processes started by someone else (a sweep's NATS/etcd)

    @property
    def job(self):
        return self.resolved.job

    @property
    def job_id(self) -> str:
        return str(self.metadata["job_id"])

    @property
    def srtctl_root(self) -> Path:
        return srtctl_root(self.resolved.cluster)


@dataclass(kw_only=True)
class RunContext(LoadedRun):
    """The planned run: what every phase after `start` works with."""

    plan: Plan
    scripts: dict[str, Path] = field(default_factory=dict)
    secret_env: dict[str, dict[str, str]] = field(default_factory=dict)
    nginx_files: Any = None  # nofile.NofileReport once nginx.conf is written


def choose_launcher(resolved: ResolvedJob, job_id: str) -> Launcher:
    executor = os.environ.get("SRT_EXECUTOR") or resolved.cluster.executor
    if executor == "local":
        return LocalLauncher()
    return SrunLauncher(job_id=job_id, nodelist=os.environ.get("SLURM_JOB_NODELIST", ""),
                        address_mode=resolved.cluster.node_addresses)


def take_secrets() -> dict[str, dict[str, str]]:
    """Secret environment values from srtctl (never written to the run directory); removed from
    os.environ so that processes only get the ones their role needs."""
    raw = os.environ.pop(SECRETS_ENV_VAR, "")
    return json.loads(raw) if raw else {}


def load_context(run_dir: Path, launcher: Launcher | None = None) -> LoadedRun:
    resolved = ResolvedJob.read(run_dir / "resolved.json", take_secrets())
    metadata = json.loads((run_dir / "metadata.json").read_text())
    job_id = os.environ.get("SLURM_JOB_ID") or os.environ.get("SRT_JOB_ID") or str(metadata["job_id"])
    metadata["job_id"] = job_id
    launcher = launcher or choose_launcher(resolved, job_id)
    status = StatusWriter(run_dir, job_id=job_id, name=resolved.job.name, executor=launcher.kind)
    return LoadedRun(run_dir=run_dir, resolved=resolved, metadata=metadata, launcher=launcher, status=status)


def build_plan(ctx: LoadedRun, nodes) -> Plan:
    """The plan on the discovered nodes, with the launcher's `launch` argvs; written to plan.json."""

    cluster = ctx.resolved.cluster
    plan = make_plan(ctx.resolved, PlanInputs(
        job_id=ctx.job_id, nodes=nodes, log_dir=str(ctx.run_dir), srtctl_root=str(ctx.srtctl_root),
        host_python=cluster.python or sys.executable, configs_dir=str(configs_dir(cluster)),
        setup_script=ctx.metadata.get("setup_script"),
        state_dir=node_state_dir(cluster.node_local_dir, ctx.job_id, os.environ.get("SLURM_TMPDIR"))))
    if ctx.launcher.kind in ("slurm", "local"):
        plan = with_launch_commands(plan, executor=ctx.launcher.kind, run_dir=str(ctx.run_dir))
    data = plan.model_dump(mode="json")
    for p in data["processes"]:
        p["env"] = redact_env(p["env"])
    write_json_atomic(ctx.run_dir / "plan.json", data)
    return plan


def render_scripts(run: LoadedRun, plan: Plan) -> RunContext:
    """Write launch/<name>.sh for every process (and nats.conf, nginx.conf), recording commands
    without secrets; the planned run."""

    ctx = RunContext(**{f.name: getattr(run, f.name) for f in fields(LoadedRun)}, plan=plan)
    for sub in ("launch", "logs", "infra", "nginx", "results", "profiles", "dynamo"):
        (ctx.run_dir / sub).mkdir(parents=True, exist_ok=True)
    for proc in ctx.plan.processes:
        text, secret = render_launch_script(
            ctx.plan, proc, log_dir=str(ctx.run_dir), configs_dir=str(configs_dir(ctx.resolved.cluster)),
            setup_script=ctx.metadata.get("setup_script"), dynamo_cache=str(ctx.srtctl_root / ".cache"),
            bin_dir=str(ctx.srtctl_root / "bin"), srtctl_root=str(ctx.srtctl_root))
        path = ctx.run_dir / "launch" / f"{proc.name}.sh"
        write_text_atomic(path, text, mode=0o755)
        ctx.scripts[proc.name] = Path(process_paths(ctx.plan, proc, str(ctx.run_dir))["script"])
        ctx.secret_env[proc.name] = secret
    if ctx.plan.nats_url:
        write_text_atomic(ctx.run_dir / "infra" / "nats.conf",
                          render("nats.conf.j2", max_payload=ctx.job.backend.nats_max_payload))
    if ctx.plan.endpoint.kind == "nginx":
        # raised in the agent itself: every process it starts (srun steps too) inherits the limit
        bench = ctx.job.benchmark
        ctx.nginx_files = files = size_nginx(*raise_soft_limit(), max(bench.concurrencies or [0]) or None)
        ep = ctx.plan.endpoint
        conf = render_nginx_conf(ep.address, ep.port, [(f.address, f.port) for f in ctx.plan.frontends],
                                 str(ctx.run_dir / "nginx"), worker_connections=files.worker_connections,
                                 worker_rlimit_nofile=files.worker_rlimit_nofile, extra_listen_ports=ep.extra_ports,
                                 affinity_header=ctx.job.backend.nginx_session_affinity_header)
        write_text_atomic(ctx.run_dir / "nginx" / "nginx.conf", conf)
    return ctx
