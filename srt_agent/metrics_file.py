"""The server-metrics file of one benchmark point, `results/metrics_isl<I>_osl<O>_c<C>.csv.gz`:
one gzip'd CSV, FIXED columns (t in s since the measured window's start, target, role, ok, error)
then the metric columns any target reported. Written by the agent's scraper
(agent/server_metrics.py), read by the report page (report_html.py) and tests: the shared core,
so the report does not import the agent.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path

from .atomic import write_bytes_atomic

FIXED = ["t", "target", "role", "ok", "error"]


def write_metrics_file(path: Path, cols: list[str], rows: Iterable[list]) -> int:
    """rows: FIXED values then one per column (None: blank). Atomic; returns the size in bytes."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIXED + cols)
    for row in rows:
        head, values = row[: len(FIXED)], row[len(FIXED):]
        w.writerow([*head, *[_fmt(v) for v in values]])
    data = gzip.compress(buf.getvalue().encode(), compresslevel=6, mtime=0)
    write_bytes_atomic(path, data)
    return len(data)


def _fmt(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def read_samples(path: Path) -> list[dict]:
    """Rows of a metrics file as dicts (numbers as floats, blanks as None) for reports and tests."""
    with gzip.open(path, "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row: dict = {"t": float(r["t"]), "target": r["target"], "role": r["role"], "ok": r["ok"] == "1",
                     "error": r["error"] or None}
        for k, v in r.items():
            if k not in FIXED:
                row[k] = float(v) if v != "" else None
        out.append(row)
    return out
