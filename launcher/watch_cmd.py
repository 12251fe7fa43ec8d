"""`srtctl watch RUN [--interval S]`: the `srtctl status` screen, refreshed live (rich.live) until
the run reaches succeeded, failed or cancelled (or its agent is gone); then it exits by itself.
Exit code: 0 succeeded, 1 failed or gone, 3 cancelled, 130 Ctrl-C."""

from __future__ import annotations

import argparse

from .console import console as make_console
from .run_lookup import RunView, add_logs_dir_argument, find_run, follow_views, load_view, logs_root
from .status_cmd import render_view

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 3}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_ID", help="run directory name or prefix, job id, or path")
    parser.add_argument("--interval", type=float, default=2.0, metavar="S", help="seconds between refreshes (default 2)")
    parser.add_argument("--tail", type=int, default=15, metavar="N", help="failure log lines to show (default 15)")
    add_logs_dir_argument(parser)


def watch(path, *, interval: float = 2.0, tail: int = 15, console=None, max_seconds: float | None = None) -> RunView:
    """Refresh until the run is over; returns its last view."""
    from rich.live import Live

    con = console or make_console()
    views = follow_views(load_view(path), interval=interval, max_seconds=max_seconds)
    view = next(views)
    # the screen's height crops what does not fit (the components table comes last)
    with Live(render_view(view, tail, compact=True), console=con, auto_refresh=False, transient=False,
              vertical_overflow="crop") as live:
        for view in views:
            live.update(render_view(view, tail, compact=True), refresh=True)
        live.update(render_view(view, tail, compact=True), refresh=True)
    if not con.is_terminal:
        con.print()  # Live leaves its last frame without a line end when not on a terminal
    return view


def run(args: argparse.Namespace) -> int:
    path = find_run(args.run, logs_root(args.logs_dir))
    view = watch(path, interval=max(args.interval, 0.1), tail=args.tail)
    if view.liveness:
        print(f"[srtctl] run failed: agent died: {view.liveness}")
        return 1
    cause = ((view.status or {}).get("failure") or {}).get("message") if view.state == "failed" else None
    print(f"[srtctl] run {view.state}" + (f": {cause}" if cause else ""))
    return EXIT_CODES.get(view.state, 1)
