"""Job-file settings of `benchmark.type: custom`: the user's own benchmark command.

The agent side (running it once against the ready endpoint) is `agent/custom_benchmark.py`.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from .secrets import is_secret_name
from .templating import render

CUSTOM_KEYS = ("command", "env", "timeout_s")
DEFAULT_TIMEOUT_S = 24 * 3600.0
# what the command is told about the deployment (docs/benchmarking.md "Your own benchmark command")
ENV_URL, ENV_MODEL, ENV_RESULTS = "SRT_ENDPOINT_URL", "SRT_MODEL", "SRT_RESULTS_DIR"
# the names srt-slurm's direct-host renderer gives its custom commands (converted recipes read them):
# the endpoint URL again, and a directory for the benchmark's own artifacts (aiperf's --output-artifact-dir)
ENV_FRONTEND_URL, ENV_ARTIFACTS = "SRT_FRONTEND_URL", "AIPERF_ARTIFACT_DIR"
PROVIDED_ENV = (ENV_URL, ENV_MODEL, ENV_RESULTS, ENV_FRONTEND_URL, ENV_ARTIFACTS)
SCRIPT, LOG = "launch/custom-benchmark.sh", "logs/custom-benchmark.log"  # under the run directory
ARTIFACTS = "results/aiperf"  # under the run directory: kept with the results, uploaded by sync
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def normalize_env(v: Any) -> Any:
    """benchmark.env: valid names, values as strings (true/false lower-case), none of the names
    srtctl sets itself, no secrets (the command inherits the job's environment for those)."""
    if not isinstance(v, dict):
        return v
    out: dict[str, str] = {}
    for k, val in v.items():
        name = str(k)
        if not _NAME.fullmatch(name):
            raise ValueError(f"'{name}' is not a valid environment variable name")
        if name in PROVIDED_ENV:
            raise ValueError(f"'{name}' is set by srtctl itself (the endpoint URL, model name, results and "
                             f"artifacts directories); remove it from benchmark.env")
        if is_secret_name(name):
            raise ValueError(f"'{name}' looks like a secret and would be written into the run directory; "
                             f"export it where you run srtctl apply instead (the command inherits the job's "
                             f"environment)")
        if isinstance(val, (dict, list)):
            raise ValueError(f"benchmark.env.{name} must be a string, number or boolean")
        out[name] = "" if val is None else (str(val).lower() if isinstance(val, bool) else str(val))
    return out


def check_custom(b: Any) -> None:
    """The cross-key rules of BenchmarkSection for type custom (raises ValueError)."""
    if b.type == "custom":
        if b.command is None:
            raise ValueError("benchmark type 'custom' needs command: a shell string (run with bash -lc) or an "
                             "argv list, e.g. command: [python3, /configs/my_bench.py]")
        if isinstance(b.command, str) and not b.command.strip():
            raise ValueError("benchmark.command is empty")
        if isinstance(b.command, list) and (not b.command or not b.command[0]):
            raise ValueError("benchmark.command: the argv list needs a program as its first item")
        parts = [b.command] if isinstance(b.command, str) else b.command
        if any("\0" in p for p in parts):
            raise ValueError("benchmark.command contains a NUL character")
        return
    stray = [k for k in CUSTOM_KEYS if (getattr(b, k) not in (None, {}))]
    if stray:
        raise ValueError(f"{', '.join(stray)} only apply to benchmark type custom (your own command); set "
                         f"type: custom, or remove them")


def shown_command(command: str | list[str]) -> str:
    return command if isinstance(command, str) else shlex.join(command)


def render_script(plan: Any, b: Any, *, base: str) -> str:
    """The script that runs the command (templates/custom_benchmark.sh.j2, every value quoted);
    `base` is the run directory as the command sees it (/logs in the container)."""
    return render("custom_benchmark.sh.j2", job_id=plan.job_id, node=plan.head_node, log=f"{base}/{LOG}",
                  env_url=ENV_URL, env_model=ENV_MODEL, env_results=ENV_RESULTS, url=plan.endpoint.url,
                  env_frontend_url=ENV_FRONTEND_URL, env_artifacts=ENV_ARTIFACTS, artifacts_dir=f"{base}/{ARTIFACTS}",
                  model=plan.served_model_name, results_dir=f"{base}/results", env=sorted(b.env.items()),
                  shell=isinstance(b.command, str), command=b.command, shown=shown_command(b.command))
