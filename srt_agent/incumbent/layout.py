"""A worker whose tensor-parallel size differs from the GPUs its nodes give it.

srt-slurm sizes a worker from the node counts alone: each worker gets `nodes x gpus_per_node /
workers` GPUs (its topology derivation never reads the engine's parallel sizes), and it passes
`--tensor-parallel-size` as written, adding `--nnodes`/`--node-rank` only when the worker spans
several nodes. So:

- a size BELOW the worker's GPUs runs, on the first `tp` of them (the others stay idle). srtctl
  checks that the two agree, so the converter states the same placement explicitly: that role's
  `resources.gpus_per_<role>` becomes the tensor-parallel size.
- a size ABOVE the worker's GPUs does not run under srt-slurm either: the worker is started on its
  own nodes without `--nnodes`, and SGLang then launches `tp` ranks on a node that has fewer GPUs.
  The converter refuses it, saying so, and names the node counts that would give it the GPUs.
"""

from __future__ import annotations

from ..resolved import TP_KEYS
from ..topology import role_layout

ROLES = (("prefill", "prefill"), ("decode", "decode"), ("agg", "aggregated"))


def fit_gpus_to_tp(c) -> None:
    """`c` is the converter after its walk (its `out` is the converted job)."""
    res = c.out.get("resources") or {}
    flags_by_section = (c.out.get("backend") or {}).get("sglang_config") or {}
    gpn = res.get("gpus_per_node")
    if not isinstance(gpn, int):
        return  # the cluster file's default: not known while converting
    for role, section in ROLES:
        nodes, workers = res.get(f"{role}_nodes"), res.get(f"{role}_workers")
        gpus_key = f"gpus_per_{role}"
        flags = flags_by_section.get(section) or {}
        tp_key = next((k for k in TP_KEYS if k in flags), None)
        if gpus_key in res or tp_key is None or not isinstance(nodes, int) or not isinstance(workers, int) or nodes < 1:
            continue
        tp = flags[tp_key]
        try:
            per_worker = role_layout(nodes, workers, gpn).gpus_per_worker
        except ValueError:  # GPUs that do not split evenly: srt-slurm's share is rounded down
            per_worker = nodes * gpn // workers
            if not (workers % nodes == 0 and isinstance(tp, int) and 0 < tp <= per_worker
                    and workers // nodes * tp <= gpn):
                continue  # srtctl's own check reports the layout
            res[gpus_key] = tp
            c.note(("backend", "sglang_config", section, tp_key),
                   f"converted: {workers} workers on {nodes * gpn} GPUs get {per_worker} each under srt-slurm (rounded "
                   f"down): resources.{gpus_key}: {tp} (its {tp_key})")
            continue
        if not isinstance(tp, int) or isinstance(tp, bool) or tp < 1:
            continue  # srtctl's own check reports the value
        if tp < per_worker and per_worker % tp == 0:
            res[gpus_key] = tp
            c.note(("backend", "sglang_config", section, tp_key),
                   f"converted: {tp_key} {tp} on workers with {per_worker} GPUs each: resources.{gpus_key}: {tp} "
                   f"(SGLang uses the first {tp}, as under srt-slurm)")
        elif tp > per_worker:
            _refuse_tp_above(c, role, section, tp_key, tp, nodes, workers, gpn, per_worker)


def _refuse_tp_above(c, role, section, tp_key, tp, nodes, workers, gpn, per_worker) -> None:
    lines = [c.line(("resources", k)) for k in (f"{role}_nodes", f"{role}_workers")]
    where = f", lines {lines[0]} and {lines[1]}" if all(lines) else ""
    spans = per_worker // gpn if per_worker > gpn else 1
    start = (f"without --nnodes, so SGLang would start {tp} ranks on one node where the worker has {per_worker} GPUs"
             if spans == 1 else
             f"with --nnodes {spans}, so SGLang would start {tp // spans} ranks on each {gpn}-GPU node")
    fix = f"set {tp_key}: {per_worker}"
    if tp % gpn == 0:
        fix += (f", or give each worker {tp // gpn} nodes ({role}_nodes: {workers * tp // gpn} for "
                f"{role}_workers: {workers}); srtctl then starts each worker on {tp // gpn} nodes with --nnodes")
    c.refuse(("backend", "sglang_config", section, tp_key),
             f"{tp_key} {tp} on {role} workers of {per_worker} GPUs each ({role}_nodes {nodes} x gpus_per_node {gpn} "
             f"/ {role}_workers {workers}{where}): srt-slurm sizes a worker from these counts, not from its "
             f"tensor-parallel size, and passes --{tp_key} {tp} as written {start}, which fails: the recipe does "
             "not run under srt-slurm either", hint=fix)
