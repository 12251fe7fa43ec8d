"""Preflight: every sglang_config flag must exist in the engine's own `--help`, checked before any
worker starts, so a typo fails in seconds instead of as a dead worker twenty minutes later."""

from __future__ import annotations

import re

from ..engines import engine_of
from ..errors import ConfigError, ConfigErrors, LaunchError
from ..resolved import SGLANG_SECTION
from ..validation import did_you_mean
from .run_context import RunContext

FLAG_RE = re.compile(r"(?<![\w-])--([a-z0-9][a-z0-9-]*)")


def engine_help_command(ctx: RunContext) -> list[str] | None:
    """The engine's `--help` (from the plan's first worker: its interpreter and module), or None."""
    plan = ctx.plan
    return engine_of(plan).help_command(plan.by_kind("worker")[0])


def parse_help_flags(text: str) -> set[str]:
    return set(FLAG_RE.findall(text))


async def check_engine_flags(ctx: RunContext) -> None:
    cmd = engine_help_command(ctx)
    if cmd is None:
        return
    flags_used = {role: ctx.job.role_flags(role) for role in ctx.job.roles}
    if not any(flags_used.values()):
        return
    plan = ctx.plan
    worker = plan.by_kind("worker")[0]
    image = plan.container_image if worker.container else None
    res = await ctx.launcher.run_once(cmd, plan.head_node, container_image=image, timeout=600,
                                      container_mounts=plan.container_mounts if image else (), name="srt-preflight")
    text = res.output
    known = parse_help_flags(text)
    if res.returncode != 0 or not known:
        raise LaunchError(f"preflight: `{' '.join(res.argv)}` failed (exit {res.returncode}): {text.strip()[-500:]}")
    (ctx.run_dir / "logs" / "engine-help.txt").write_text(text)
    problems = []
    for role, flags in flags_used.items():
        for key in flags:
            if key not in known:
                guess = did_you_mean(key, known)
                problems.append(ConfigError(
                    f"'{key}' is not a flag of the engine (-m {worker.module})", file=ctx.resolved.job_file,
                    key=f"backend.sglang_config.{SGLANG_SECTION[role]}.{key}",
                    hint=f"did you mean '{guess}'?" if guess else "check `--help` of the engine in your container"))
    if problems:
        raise ConfigErrors(problems)
