"""Converter handlers for srt-slurm's direct-host recipes (`model.container: direct-host`).

srt-slurm renders such a recipe as a bash script (`srtctl apply --bash`) whose processes run on the
host's own Python and SGLang, without a container; its model path may name an environment variable
(`path: $RUTER_MODEL_PATH`) that must be exported when the recipe is rendered. In srtctl that is
`model.container: none` (srt_agent/host_mode.py): every srun step on the node, the workers with
`model.python` (from `$SRTCTL_PYTHON`, the interpreter srt-slurm's direct runner prefers, when it is
set where srtctl converts) or srtslurm.yaml `python`. The custom benchmark's `$SRT_FRONTEND_URL` and
`$AIPERF_ARTIFACT_DIR` are set by srtctl too (srt_agent/custom_command.py).
"""

from __future__ import annotations

import os
import re

from ..host_mode import NO_CONTAINER

DIRECT_HOST = "direct-host"
PYTHON_ENV = "SRTCTL_PYTHON"
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def container(c, e, path, value) -> None:
    if value != DIRECT_HOST:
        c.put(("model", "container"), value, path)
        return
    c.put(("model", "container"), NO_CONTAINER, path)
    python = os.environ.get(PYTHON_ENV, "")
    if python.startswith("/"):
        c.put(("model", "python"), python, path)
        c.note(path, f"converted: direct-host -> model.container: none; model.python from ${PYTHON_ENV} ({python})")
    else:
        c.note(path, "converted: direct-host -> model.container: none (no container); the workers run with "
                     f"srtslurm.yaml `python` (export {PYTHON_ENV}=/path/to/python before converting, or set "
                     "model.python, to name another)")


def model_path(c, e, path, value) -> None:
    """`$NAME` / `${NAME}` in model.path: the value exported where srtctl runs, as srt-slurm reads it."""
    if not isinstance(value, str) or "$" not in value:
        c.put(("model", "path"), value, path)
        return
    names = [a or b for a, b in _VAR.findall(value)]
    unset = [n for n in names if not os.environ.get(n)]
    if not names or unset or "$" in _VAR.sub("", value):
        missing = unset[0] if unset else "NAME"
        c.refuse(path, f"model.path {value!r} reads {'$' + missing} from the environment, which is not set"
                 if unset else f"model.path {value!r} is not a path nor a $NAME srtctl can expand",
                 hint=f"export {missing}=/absolute/path/to/the/model where you run srtctl (srt-slurm reads it "
                      "when it renders the recipe), or write the path itself")
        return
    expanded = _VAR.sub(lambda m: os.environ[m.group(1) or m.group(2)], value)
    c.put(("model", "path"), expanded, path)
    c.note(path, f"converted: {value} -> {expanded} (from the environment srtctl runs in)")


HANDLERS = {
    "model.container": container,
    "model.path": model_path,
}
