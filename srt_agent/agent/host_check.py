"""Preflight of a no-container job (`model.container: none`): the host Python it names must run on
the head node and have the packages its processes import, checked before anything starts.

A dry-run validates the path (absolute) but cannot look at the compute nodes; this runs the
Python once through the launcher (an srun step on SLURM), records its version in events.jsonl and
fails the run with the interpreter, the node and what is missing. Dynamo counts only when srtctl
does not install it (backend.dynamo_install: false); the packages are looked up, not imported.
"""

from __future__ import annotations

import json

from ..errors import LaunchError
from ..host_mode import NO_CONTAINER
from ..plan import Plan, ProcessSpec

# what `python -m MODULE` needs importable, by the module's first part
_NEEDS = {"sglang": ("sglang",), "dynamo": ("dynamo",)}
_PROBE = ("import importlib.util, json, sys; "
          "print(json.dumps({'python': sys.executable, 'version': sys.version.split()[0], "
          "'missing': [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]}))")


def needed_packages(proc: ProcessSpec) -> list[str]:
    """The top-level packages `proc` imports from its Python (dynamo.sglang: dynamo and sglang)."""
    parts = (proc.module or "").split(".")
    out = list(_NEEDS.get(parts[0], ()))
    if parts[0] == "dynamo" and len(parts) > 1 and parts[1] in _NEEDS:
        out += _NEEDS[parts[1]]
    if proc.dynamo_version:  # the launch script installs ai-dynamo over this Python
        out = [m for m in out if m != "dynamo"]
    return out


def probes(plan: Plan) -> dict[str, list[str]]:
    """host Python -> the packages its host processes need (the order of the plan)."""
    out: dict[str, list[str]] = {}
    for p in plan.processes:
        if p.container or not p.python or not p.module:
            continue
        need = out.setdefault(p.python, [])
        need += [m for m in needed_packages(p) if m not in need]
    return out


async def check_host_python(ctx) -> None:
    if ctx.job.model.container != NO_CONTAINER:
        return
    plan = ctx.plan
    source = "model.python" if ctx.job.model.python else "srtslurm.yaml `python`"
    for python, packages in probes(plan).items():
        try:
            res = await ctx.launcher.run_once([python, "-c", _PROBE, *packages], plan.head_node, timeout=300,
                                              name="srt-preflight-python")
            info = _parse(res.output) if res.returncode == 0 else None
            why = f"exit {res.returncode}: {res.output.strip()[-400:]}"
        except LaunchError as exc:  # the local launcher cannot even start it (srun starts and fails)
            info, why = None, str(exc).rsplit(": ", 1)[-1]
        if info is None:
            raise LaunchError(f"preflight: the host Python {python} ({source}; model.container: none) does not run on "
                              f"{plan.head_node} ({why}); set model.python to an interpreter every node has")
        ctx.status.event("host_python", python=python, version=info["version"], node=plan.head_node,
                         packages=packages)
        if info["missing"]:
            raise LaunchError(f"preflight: the host Python {python} ({source}; model.container: none) on "
                              f"{plan.head_node} lacks {', '.join(info['missing'])}: install "
                              f"{' and '.join(info['missing'])} into it, or name the Python that has "
                              f"{'them' if len(info['missing']) > 1 else 'it'} in model.python")


def _parse(output: str) -> dict | None:
    for line in reversed(output.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "version" in data and isinstance(data.get("missing"), list):
            return data
    return None
