"""Converter handlers for the rarer recipe keys: the custom benchmark, NATS payload, srun options,
telemetry / observability (mapping.py has their rows; convert.py registers these in its table)."""

from __future__ import annotations

import re
from typing import Any

from ..custom_command import ENV_URL
from .experimental import HANDLERS as EXPERIMENTAL_HANDLERS
from .direct_host import HANDLERS as DIRECT_HOST_HANDLERS

# srt-slurm serves its public endpoint at port 8000 on the head node and documents "hit
# http://localhost:<port> directly" for custom commands; srtctl's endpoint has a per-job port
_INCUMBENT_URL = re.compile(r"http://(localhost|127\.0\.0\.1|0\.0\.0\.0):8000(?![0-9])")


def custom_command(c, e, path, value) -> None:
    if not isinstance(value, str) or not value.strip():
        c.refuse(path, "benchmark.command must be a non-empty shell command string",
                 hint="write the command srt-slurm ran with bash -lc")
        return
    command, n = _INCUMBENT_URL.subn("${" + ENV_URL + "}", value)
    if n and re.search(r"'[^']*\$\{" + ENV_URL + r"\}[^']*'", command):
        c.refuse(path, "benchmark.command names srt-slurm's endpoint http://localhost:8000 inside single quotes, "
                 "where srtctl cannot put its per-job endpoint", hint=f"use double quotes around it, or ${ENV_URL}")
        return
    c.put(("benchmark", "command"), command, path)
    if n:
        c.note(path, f"converted: srt-slurm's endpoint http://localhost:8000 -> ${ENV_URL} (srtctl's endpoint has a "
                     f"per-job port), {n} time{'s' if n > 1 else ''}")


def custom_env(c, e, path, value) -> None:
    c.put(("benchmark", "env", path[-1]), "" if value is None else (
        str(value).lower() if isinstance(value, bool) else value), path)


def nats_max_payload(c, e, path, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or int(value) != value:
        c.refuse(path, "infra.nats_max_payload_mb must be a positive whole number of megabytes")
        return
    c.put(("backend", "nats_max_payload"), f"{int(value)}MB", path)


def srun_option(c, e, path, value) -> None:
    c.put(("slurm", "srun_options", path[-1]), None if value is None else str(value), path)


def approximated_section(c, e, path, value) -> None:
    """telemetry / observability: one note for the whole section (srtctl's own scrape stands in)."""
    enabled = value.get("enabled", True) if isinstance(value, dict) else bool(value)
    if enabled:
        c.note(path, f"approximated: {e.note}")


INCUMBENT_AFFINITY_HEADER = "X-Dynamo-Session-ID"  # srt-slurm's default nginx_session_affinity_header


def session_affinity(c, e, path, value) -> None:
    front = c.doc.data.get("frontend") or {}
    if not value:
        return
    if front.get("type", "dynamo") != "dynamo":
        c.note(path, "dropped: session affinity is nginx's, in front of Dynamo frontends")
        return
    header = front.get("nginx_session_affinity_header") or INCUMBENT_AFFINITY_HEADER
    c.put(("backend", "nginx_session_affinity_header"), str(header), path)


def session_affinity_header(c, e, path, value) -> None:
    """Taken by `frontend.nginx_session_affinity` when that is on; alone it does nothing (as in srt-slurm)."""


def frontend_env(c, e, path, value) -> None:
    """Moved as is; srt-slurm's `{artifact_dir}` placeholder (a per-run directory its direct-host
    renderer fills in) has no expansion in srtctl, so the value is passed as written, with a note."""
    c.put(("backend", "frontend_environment", path[-1]), value, path)
    if isinstance(value, str) and "{artifact_dir}" in value:
        c.note(path, "approximated: srt-slurm's {artifact_dir} placeholder is not expanded by srtctl; the value "
                     "is passed as written (give an absolute path under the run's log directory instead)")


def kv_events(c, e, path, value) -> None:
    c.put(("backend", "kv_events_config"), value, path)


def refuse_profiled_custom(c) -> None:
    c.refuse(("profiling", "type"), "profiling around a custom benchmark has no equivalent in srtctl (it "
             "profiles with its own load)", hint="remove profiling, or set benchmark.type: sa-bench")


HANDLERS: dict[str, Any] = {
    "benchmark.command": custom_command,
    "benchmark.env.*": custom_env,
    "infra.nats_max_payload_mb": nats_max_payload,
    "srun_options.*": srun_option,
    "frontend.nginx_session_affinity": session_affinity,
    "frontend.nginx_session_affinity_header": session_affinity_header,
    "backend.kv_events_config": kv_events,
    "frontend.env.*": frontend_env,
    "telemetry": approximated_section,
    "observability": approximated_section,
    **EXPERIMENTAL_HANDLERS,
    **DIRECT_HOST_HANDLERS,  # model.container: direct-host, model.path: $NAME
}
