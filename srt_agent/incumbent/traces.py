"""Converter handlers for srt-slurm's trace benchmarks and `model.container_image` (mapping.py has
their rows; convert.py registers these in its table).

Both of srt-slurm's trace benchmarks run aiperf on a Mooncake-format trace (`mooncake_trace`:
every request at its timestamp), with a goodput figure from a TTFT and an ITL threshold (2000 ms
and 25 ms unless given). `trace-replay` replays the recipe's `trace_file` (a path in the
container) once per concurrency; `mooncake-router` replays one of the Mooncake FAST'25 traces,
named by `mooncake_workload`, which srt-slurm downloads into the job's logs, uncapped. srtctl
runs both as its own `trace-replay` benchmark (srt-loadgen); compute nodes have no internet, so
a Mooncake workload's trace is read from srtslurm.yaml `eval_datasets_dir`."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from ..validation import did_you_mean

TRACE_TYPES = ("trace-replay", "mooncake-router")
MOONCAKE_WORKLOADS = ("conversation", "toolagent", "synthetic", "mooncake")  # srt-slurm's download list
INCUMBENT_WORKLOAD = "conversation"
INCUMBENT_THRESHOLDS = {"ttft_threshold_ms": 2000, "itl_threshold_ms": 25}


def mooncake_trace(datasets_dir: str, workload: str) -> str:
    """Where srtctl reads a Mooncake workload's trace (the file name the workload has upstream)."""
    return f"{datasets_dir.rstrip('/')}/mooncake/{workload}_trace.jsonl"


def trace_types(fallback):
    """The benchmark.type handler: the trace types here, every other type by `fallback`."""
    def handle(c, e, path, value) -> None:
        if value not in TRACE_TYPES:
            fallback(c, e, path, value)
            return
        bench = c.doc.data.get("benchmark") or {}
        if value == "mooncake-router" and not _mooncake(c, path, bench):
            return
        c.put(("benchmark", "type"), "trace-replay", path)
        for key, default in INCUMBENT_THRESHOLDS.items():  # srt-slurm's goodput always has both
            if bench.get(key) is None:
                c.put(("benchmark", key), default, path)
    return handle


def _mooncake(c, path, bench: dict) -> bool:
    workload = bench.get("mooncake_workload") or INCUMBENT_WORKLOAD
    where = ("benchmark", "mooncake_workload") if "mooncake_workload" in bench else path
    if workload not in MOONCAKE_WORKLOADS:
        guess = did_you_mean(str(workload), MOONCAKE_WORKLOADS)
        c.refuse(where, f"mooncake_workload {workload!r} is not one of srt-slurm's Mooncake traces "
                 f"({', '.join(MOONCAKE_WORKLOADS)})", hint=f"did you mean {guess!r}?" if guess else
                 "use one of them, or benchmark type trace-replay with your own trace_file")
        return False
    if not c.eval_datasets_dir:
        c.refuse(path, f"the Mooncake {workload!r} trace is downloaded by srt-slurm's harness; srtctl reads it from "
                 "srtslurm.yaml `eval_datasets_dir`, which is not set",
                 hint=f"add `eval_datasets_dir: /shared/evals` to srtslurm.yaml and put the trace at "
                      f"{mooncake_trace('/shared/evals', workload)} (docs/migrating.md)")
        return False
    c.put(("benchmark", "trace_file"), mooncake_trace(c.eval_datasets_dir, workload), where)
    if bench.get("concurrencies") is not None:
        c.note(("benchmark", "concurrencies"), "dropped: mooncake-router replays the trace uncapped (aiperf's fixed "
               "schedule), so srtctl does too")
    return True


def _mounts(data: dict) -> list[tuple[str, str]]:
    """(host, container) of the recipe's mounts: extra_mount entries and container_mounts."""
    out = []
    for m in data.get("extra_mount") or []:
        parts = str(m).split(":")
        if len(parts) >= 2:
            out.append((parts[0], parts[1]))
    for host, target in (data.get("container_mounts") or {}).items():
        out.append((str(host), str(target)))
    return out


def trace_file(c, e, path, value) -> None:
    """srt-slurm reads the trace inside the container; srtctl's agent reads it on the head node: a
    path under one of the recipe's mounts becomes the host path it mounts."""
    if (c.doc.data.get("benchmark") or {}).get("type") != "trace-replay":
        c.refuse(path, "benchmark.trace_file belongs to benchmark type trace-replay", hint="remove it")
        return
    text = str(value or "")
    if not text.startswith("/"):
        c.refuse(path, f"trace_file {text!r} is not an absolute path: srtctl reads the trace on the head node and "
                 "cannot tell which directory srt-slurm's container resolved it from",
                 hint="write the absolute path of the trace (a container path under one of the recipe's mounts works)")
        return
    file = PurePosixPath(text)
    for host, target in sorted(_mounts(c.doc.data), key=lambda m: -len(m[1])):
        if file == PurePosixPath(target) or PurePosixPath(target) in file.parents:
            host_path = str(PurePosixPath(host) / file.relative_to(target))
            c.put(("benchmark", "trace_file"), host_path, path)
            c.note(path, f"converted: the container path {text} -> {host_path}, the host path its mount {host}:{target} "
                         "gives (srtctl reads the trace on the head node, outside the container)")
            return
    c.put(("benchmark", "trace_file"), text, path)
    c.note(path, f"approximated: srtctl reads {text} on the head node, outside the container (no mount of the "
                 "recipe covers it); the agent's preflight checks that it is there")


def mooncake_workload(c, e, path, value) -> None:
    """Read by the benchmark.type handler; alone it belongs to no benchmark."""
    if (c.doc.data.get("benchmark") or {}).get("type") != "mooncake-router":
        c.refuse(path, "benchmark.mooncake_workload belongs to benchmark type mooncake-router", hint="remove it")


def container_image(c, e, path, value) -> None:
    """srt-slurm's recipes give `container_image` (the pullable registry reference, "pullable Docker
    URI" in their comments) next to `container` (the image the job runs, an alias or .sqsh file)."""
    model = c.doc.data.get("model") or {}
    if model.get("container"):
        c.note(path, f"dropped: descriptive, the pullable registry reference of the image; srtctl runs model.container "
                     f"{model['container']!r} (to run from the registry instead, make {value!r} model.container: "
                     "pyxis imports it)")
        return
    c.put(("model", "container"), str(value), path)  # no image of its own: run the registry one (pyxis imports it)


HANDLERS: dict[str, Any] = {
    "benchmark.trace_file": trace_file,
    "benchmark.mooncake_workload": mooncake_workload,
    "model.container_image": container_image,
}
