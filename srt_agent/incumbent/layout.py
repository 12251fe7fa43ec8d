"""A worker whose tensor-parallel size is below the GPUs its nodes give it.

srt-slurm hands each worker all the GPUs of its share of the nodes (nodes x gpus_per_node /
workers) and passes `--tp-size` as written; SGLang then runs on the first `tp` of them. srtctl
checks that the two agree, so the converter states the same placement explicitly: that role's
`resources.gpus_per_<role>` becomes the tensor-parallel size (the other GPUs stay idle, as they
do under srt-slurm). A tensor-parallel size above the worker's GPUs has no such reading and is
left to srtctl's check, which refuses it naming the flag's line.
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
        if isinstance(tp, int) and not isinstance(tp, bool) and 0 < tp < per_worker and per_worker % tp == 0:
            res[gpus_key] = tp
            c.note(("backend", "sglang_config", section, tp_key),
                   f"converted: {tp_key} {tp} on workers with {per_worker} GPUs each: resources.{gpus_key}: {tp} "
                   f"(SGLang uses the first {tp}, as under srt-slurm)")
