"""`srtctl runs [--tag T] [--since 2d|YYYY-MM-DD] [--json]`: runs, newest first, with name, job id,
tags, topology, state and headline results (best output tok/s, best output tok/s per GPU)."""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .console import STATE_STYLES, console, fmt_num
from .run_lookup import RunView, add_logs_dir_argument, load_view, logs_root, run_dirs, run_row
from .sweep_view import sweep_status

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """`2d`, `12h`, `30m`, `1w` ago, or a date `YYYY-MM-DD` (local midnight), or an ISO time."""
    now = now or datetime.now(timezone.utc)
    m = _AGE_RE.match(text.strip())
    if m:
        return now - timedelta(seconds=float(m[1]) * _UNITS[m[2]])
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is neither an age (30m, 12h, 2d, 1w) nor a date (YYYY-MM-DD)") from None
    return dt if dt.tzinfo else dt.astimezone()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tag", action="append", default=[], metavar="T",
                        help="only runs with this tag (repeat: runs with every given tag)")
    parser.add_argument("--since", type=parse_since, metavar="AGE|DATE",
                        help="only runs submitted since: an age (30m, 12h, 2d, 1w) or a date YYYY-MM-DD")
    parser.add_argument("--state", help="only runs in this state (succeeded, failed, running, ...)")
    parser.add_argument("-n", "--limit", type=int, default=0, help="at most N runs (newest first)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--sweep", metavar="SWEEP", help="the members of one sweep, with their values")
    add_logs_dir_argument(parser)


def select(views: list[RunView], *, tags: list[str] = (), since: datetime | None = None,
           state: str | None = None) -> list[RunView]:
    out = []
    for v in views:
        if any(t not in v.tags for t in tags):
            continue
        if since is not None and (v.submitted is None or v.submitted < since):
            continue
        if state and v.state != state:
            continue
        out.append(v)
    return out


def print_runs(views: list[RunView], *, as_json: bool, root: Path) -> int:
    rows = [run_row(v) for v in views]
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    from rich import box
    from rich.table import Table

    con = console()
    if not rows:
        con.print(f"no runs in {root}")
        return 0
    table = Table(title=f"Runs in {root}", title_justify="left", box=box.SIMPLE_HEAD, collapse_padding=True,
                  caption="out tok/s, tok/s/GPU: best point of the sweep (per GPU: all GPUs of the job); "
                  "ready: seconds from submit to ready",
                  caption_justify="left")
    for col, just, wrap in (("job", "right", False), ("name", "left", False), ("topology", "left", False),
                            ("tags", "left", True), ("state", "left", True), ("points", "right", False),
                            ("out tok/s", "right", False), ("tok/s/GPU", "right", False),
                            ("ready", "right", False), ("accuracy", "left", True),
                            ("submitted", "left", False)):
        if col == "accuracy" and not any(r["accuracy"] for r in rows):
            continue  # the column only when some run has an eval score
        table.add_column(col, justify=just, no_wrap=not wrap, overflow="fold")
    with_accuracy = any(r["accuracy"] for r in rows)
    for r in rows:
        state = r["state"] + (" (agent gone)" if r["agent_gone"] else "")
        sub = r["submitted_at"][:16].replace("T", " ") if r["submitted_at"] else "-"
        pts = f"{r['points_done']}/{r['points_total']}" if r["points_total"] else (str(r["points"]) if r["points"]
                                                                                 else "-")
        accuracy = [", ".join(f"{t} {v:.3f}" for t, v in r["accuracy"].items()) or "-"] if with_accuracy else []
        table.add_row(r["job_id"], r["name"], r["topology"], ",".join(r["tags"]) or "-",
                      f"[{STATE_STYLES.get(r['state'], '')}]{state}[/]", pts, fmt_num(r["best_output_tok_s"]),
                      fmt_num(r["best_output_tok_s_per_gpu"]), fmt_num(r["ready_s"]), *accuracy, sub)
    con.print(table)
    return 0


def run(args: argparse.Namespace) -> int:
    root = logs_root(args.logs_dir)
    if args.sweep:
        sweep_status(args.sweep, root, as_json=args.json, results=True)
        return 0
    views = select([load_view(p, query_slurm=False) for p in run_dirs(root)], tags=args.tag, since=args.since,
                   state=args.state)
    if args.limit:
        views = views[: args.limit]
    return print_runs(views, as_json=args.json, root=root)
