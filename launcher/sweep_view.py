"""Looking at a sweep: `srtctl status SWEEP`, `srtctl runs --sweep SWEEP`, `srtctl report --sweep SWEEP`.

A sweep is named by its id (`<name>_<ts>`, printed by apply), a unique prefix of it, a path to
a directory holding its sweep.json, or (mode allocation) the job id of its allocation. Its members are the run directories sweep.json lists.
"""

from __future__ import annotations

import json
from pathlib import Path

from srt_agent.errors import RunNotFound
from srt_agent.rundir import read_json

from .console import STATE_STYLES, console, fmt_num, markup
from .run_lookup import headline, load_view, run_row


def find_sweep(ref: str, root: Path) -> tuple[dict, Path]:
    """(sweep.json contents, its path)."""
    for p in (Path(ref), root / ref):  # a sweep's directory (mode allocation: logs/<jobid>_sweep_<ts>)
        if ref and (p / "sweep.json").is_file():
            return json.loads((p / "sweep.json").read_text()), p / "sweep.json"
    base = root / "sweeps"
    names = sorted(d.name for d in base.iterdir() if (d / "sweep.json").is_file()) if base.is_dir() else []
    hits = [n for n in names if n == ref] or [n for n in names if n.startswith(ref)]
    if not hits and ref.isdigit():  # the job id of a sweep's one allocation
        hits = [n for n in names if str((read_json(base / n / "sweep.json") or {}).get("job_id")) == ref]
    if len(hits) != 1:
        known = ", ".join(names[-5:]) or "none"
        raise RunNotFound(f"{'no' if not hits else 'more than one'} sweep matches '{ref}' in {base} "
                          f"(recent: {known})")
    path = base / hits[0] / "sweep.json"
    return json.loads(path.read_text()), path


def is_sweep_ref(ref: str, root: Path) -> bool:
    try:
        find_sweep(ref, root)
        return True
    except (RunNotFound, OSError):
        return False


def value_label(info: dict, values: dict) -> str:
    labels = info.get("labels") or {}
    return ", ".join(f"{labels.get(k, k)}={v}" for k, v in values.items())


def member_rows(info: dict) -> list[dict]:
    rows = []
    for m in info["members"]:
        run_dir = Path(m["run_dir"]) if m.get("run_dir") else None
        row = {"member": m["name"], "values": m["values"], "label": value_label(info, m["values"]),
               "run_dir": str(run_dir) if run_dir else None, "job_id": m.get("job_id")}
        if run_dir is not None and run_dir.is_dir():
            view = load_view(run_dir, query_slurm=False)
            r = run_row(view)
            row.update(state=r["state"], phase=r["phase"], points_done=r["points_done"],
                       points_total=r["points_total"], best_output_tok_s=r["best_output_tok_s"],
                       best_output_tok_s_per_gpu=r["best_output_tok_s_per_gpu"], job_id=r["job_id"])
        else:
            row.update(state="not started", phase=None, points_done=0, points_total=0, **headline([]))
        rows.append(row)
    return rows


def print_sweep(info: dict, rows: list[dict], *, title: str, results: bool) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col, just in (("member", "left"), ("values", "left"), ("job", "right"), ("state", "left"),
                      ("phase", "left"), ("points", "right")):
        table.add_column(col, justify=just, overflow="fold")
    if results:
        table.add_column("out tok/s", justify="right")
        table.add_column("tok/s/GPU", justify="right")
    for r in rows:
        pts = f"{r['points_done']}/{r['points_total']}" if r["points_total"] else "-"
        cells = [escape(r["member"]), escape(r["label"]), str(r.get("job_id") or "-"),
                 markup(r["state"], STATE_STYLES.get(r["state"])), r["phase"] or "-", pts]
        if results:
            cells += [fmt_num(r["best_output_tok_s"]), fmt_num(r["best_output_tok_s_per_gpu"])]
        table.add_row(*cells)
    con = console()
    con.print(table)
    progress = None
    if info.get("mode") == "allocation" and rows and rows[0]["run_dir"]:
        progress = read_json(Path(rows[0]["run_dir"]).parent / "sweep_progress.json")
    if progress and progress.get("current"):
        con.print(f"allocation: running member {progress['index'] + 1}/{progress['total']} {progress['current']}")


def sweep_status(ref: str, root: Path, *, as_json: bool, results: bool = False) -> int:
    info, path = find_sweep(ref, root)
    rows = member_rows(info)
    if as_json:
        print(json.dumps({"sweep_id": info["sweep_id"], "mode": info["mode"], "sweep_json": str(path),
                          "members": rows}, indent=2, default=str))
    else:
        done = sum(r["state"] == "succeeded" for r in rows)
        print_sweep(info, rows, results=results,
                    title=f"Sweep {info['sweep_id']} (mode {info['mode']}): {done}/{len(rows)} members succeeded")
    return 1 if any(r["state"] == "failed" for r in rows) else 0


def sweep_report_inputs(ref: str, root: Path) -> tuple[dict, list[Path], list[str]]:
    """Member run directories that have a run, and their labels (the swept values)."""
    info, _ = find_sweep(ref, root)
    dirs, labels = [], []
    for m in info["members"]:
        if m.get("run_dir") and Path(m["run_dir"]).is_dir():
            dirs.append(Path(m["run_dir"]))
            labels.append(value_label(info, m["values"]))
    if not dirs:
        raise RunNotFound(f"sweep {info['sweep_id']} has no member run directories yet")
    return info, dirs, labels
