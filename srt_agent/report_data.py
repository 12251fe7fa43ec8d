"""The data of a benchmark report: a run's valid points, its GPUs and label, the two axes
(per-GPU and per-user throughput) and the Pareto frontier. Shared by the markdown and figures
(report.py) and the interactive page (report_html.py); definitions of the axes in report.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PER_GPU_KEYS = {"total": "output_tok_s_per_gpu", "decode": "output_tok_s_per_decode_gpu"}
PER_GPU_LABELS = {
    "total": "output tok/s per GPU (denominator: all GPUs of the job, prefill + decode)",
    "decode": "output tok/s per decode GPU (denominator: decode GPUs; aggregated runs: all GPUs)",
}
PER_USER_LABEL = "tok/s per user (1000 / mean TPOT ms)"
LATENCY_METRICS = (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2el", "E2EL"))


# ---------------------------------------------------------------------------- data


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def _concurrency(point: dict) -> int:
    c = point.get("max_concurrency")
    return int(c) if isinstance(c, (int, float)) else 0


def load_points(run_dir: str | Path) -> list[dict]:
    """The run's valid benchmark points, by concurrency.

    results/rollup.json once the sweep finished; before that the points ledger.json marks as
    measured (valid); else every results/result_*.json (runs without a ledger).
    """
    run_dir = Path(run_dir)
    rollup = _read_json(run_dir / "results" / "rollup.json")
    if isinstance(rollup, dict) and isinstance(rollup.get("points"), list):
        points = [p for p in rollup["points"] if isinstance(p, dict)]
    else:
        ledger = _read_json(run_dir / "ledger.json")
        if isinstance(ledger, dict) and isinstance(ledger.get("points"), dict):
            files = [run_dir / rel for rel in ledger["points"].values()]
        else:
            files = sorted((run_dir / "results").glob("result_*.json"))
        points = [p for p in (_read_json(f) for f in files) if isinstance(p, dict)]
    return sorted(points, key=_concurrency)


@dataclass
class RunData:
    path: Path
    metadata: dict
    points: list[dict] = field(default_factory=list)
    label: str = ""
    time_to_ready: dict | None = None  # status.json's time_to_ready

    @property
    def gpus(self) -> int | None:
        for p in self.points:
            if p.get("total_gpus"):
                return int(p["total_gpus"])
        g = self.metadata.get("gpus")
        return int(g) if g else None

    @property
    def decode_gpus(self) -> int | None:
        for p in self.points:
            if p.get("decode_gpus"):
                return int(p["decode_gpus"])
        return None

    @property
    def isl_osl(self) -> str:
        p = self.points[0] if self.points else {}
        return f"{p.get('isl', '?')}/{p.get('osl', '?')}"


def load_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir).resolve()
    meta = _read_json(run_dir / "metadata.json") or {}
    run = RunData(path=run_dir, metadata=meta, points=load_points(run_dir),
                  time_to_ready=(_read_json(run_dir / "status.json") or {}).get("time_to_ready"))
    job = meta.get("job_id") or run_dir.name.split("_", 1)[0]
    topo = meta.get("topology") or "?"
    gpus = run.gpus
    run.label = f"{meta.get('name') or run_dir.name} (job {job}, {topo}" + (f", {gpus} GPUs)" if gpus else ")")
    return run


def per_gpu_value(point: dict, per_gpu: str = "total", gpus: int | None = None) -> float | None:
    """Output tok/s per GPU: per all GPUs ("total") or per decode GPU ("decode")."""
    v = point.get(PER_GPU_KEYS[per_gpu])
    if v is None and per_gpu == "decode":
        v = point.get(PER_GPU_KEYS["total"])  # aggregated: every GPU decodes
    if v is None and gpus and point.get("output_throughput") is not None:
        v = point["output_throughput"] / gpus
    return float(v) if v is not None else None


def per_user_value(point: dict) -> float | None:
    v = point.get("tok_s_per_user")
    if v:
        return float(v)
    tpot = point.get("mean_tpot_ms")
    return 1000.0 / tpot if tpot else None


def pareto_frontier(xy: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (both maximised), by x."""
    order = sorted(range(len(xy)), key=lambda i: (-xy[i][0], -xy[i][1]))
    frontier, best_y = [], float("-inf")
    for i in order:
        if xy[i][1] > best_y:
            frontier.append(i)
            best_y = xy[i][1]
    return sorted(frontier, key=lambda i: xy[i][0])


def pareto_points(run: RunData, per_gpu: str = "total") -> tuple[list[tuple[float, float, int]], list[int]]:
    """(per-user, per-GPU, concurrency) of every point with both values, and the frontier indices."""
    pts = []
    for p in run.points:
        x, y = per_user_value(p), per_gpu_value(p, per_gpu, run.gpus)
        if x is not None and y is not None:
            pts.append((x, y, _concurrency(p)))
    return pts, pareto_frontier([(x, y) for x, y, _ in pts])
