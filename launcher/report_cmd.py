"""`srtctl report RUN... [-o DIR] [--per-gpu total|decode]`: Pareto plot (tok/s/GPU vs
tok/s/user), latency-vs-concurrency plots, a markdown summary and report.html (one
self-contained page: Pareto, latency, time to ready, server metrics; srt_agent/report_html.py);
several runs overlay, one colour per run. Default output: <run>/report/ for one run, ./reports/<job ids>/ for several."""

from __future__ import annotations

import argparse
from pathlib import Path

from srt_agent.errors import ConfigError
from srt_agent.evals.summary import load_eval_results, score_text
from srt_agent.report import (
    NO_MATPLOTLIB,
    PER_GPU_KEYS,
    SUMMARY_COLUMNS,
    load_run,
    summary_rows,
    write_report,
)

from .console import console, display
from .run_lookup import add_logs_dir_argument, find_run, logs_root
from .sweep_view import sweep_report_inputs

# the markdown table's columns, shortened for an 120-column terminal
_SOURCE_COLUMNS = ["conc", "completed", "failed", "out tok/s", "out tok/s/GPU", "tok/s/user", "TTFT p50/p99 ms",
                   "TPOT p50/p99 ms", "E2EL p50/p99 ms", "frontier"]
TERMINAL_COLUMNS = ["conc", "ok", "failed", "out tok/s", "tok/s/GPU", "tok/s/user", "TTFT p50/p99", "TPOT p50/p99",
                    "E2EL p50/p99", "frontier"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="*", metavar="RUN_ID", help="run directory names or prefixes, job ids, or paths")
    parser.add_argument("--sweep", metavar="SWEEP", help="every member of a sweep, labelled by its swept values")
    parser.add_argument("-o", "--output", metavar="DIR",
                        help="output directory (default: <run>/report for one run, reports/<ids> for several)")
    parser.add_argument("--per-gpu", choices=sorted(PER_GPU_KEYS), default="total",
                        help="tok/s/GPU denominator: all GPUs of the job (default) or decode GPUs only")
    parser.add_argument("--no-plots", action="store_true", help="markdown summary only (no matplotlib needed)")
    add_logs_dir_argument(parser)


def default_output(run_dirs: list[Path]) -> Path:
    if len(run_dirs) == 1:
        return run_dirs[0] / "report"
    return Path("reports") / "_vs_".join(p.name.split("_", 1)[0] for p in run_dirs)


def run(args: argparse.Namespace) -> int:
    root = logs_root(args.logs_dir)
    labels = None
    if args.sweep:
        info, dirs, labels = sweep_report_inputs(args.sweep, root)
        dirs += [d for d in dict.fromkeys(find_run(r, root) for r in args.runs) if d not in dirs]
        labels += [None] * (len(dirs) - len(labels))
        out = Path(args.output) if args.output else Path("reports") / info["sweep_id"]
    elif not args.runs:
        raise ConfigError("report needs RUN_ID... or --sweep SWEEP", key="report")
    else:
        dirs = list(dict.fromkeys(find_run(r, root) for r in args.runs))
        out = Path(args.output) if args.output else default_output(dirs)
    written = write_report(dirs, out, per_gpu=args.per_gpu, plots=not args.no_plots, labels=labels)

    from rich import box
    from rich.table import Table

    con = console()
    for i, d in enumerate(dirs):
        data = load_run(d)
        if labels and labels[i]:
            data.label = f"{labels[i]}  ({data.label})"
        for r in load_eval_results(d):
            con.print(f"{data.label}: accuracy {score_text(r)}")
        if not data.points:
            con.print(f"[yellow]{data.label}: no valid benchmark points[/yellow]")
            continue
        table = Table(title=data.label, title_justify="left", box=box.SIMPLE_HEAD)
        for col in TERMINAL_COLUMNS:
            table.add_column(col, justify="right", no_wrap=True)
        for row in summary_rows(data, args.per_gpu):
            cells = dict(zip(SUMMARY_COLUMNS, row))
            table.add_row(*(cells[c].replace(" / ", "/") if c in cells else "" for c in _SOURCE_COLUMNS))
        con.print(table)
    if "pareto" not in written and not args.no_plots and NO_MATPLOTLIB in (out / "report.md").read_text():
        con.print(f"[yellow]{NO_MATPLOTLIB}[/yellow]")
    for kind, path in written.items():
        print(f"{kind}: {display(path)}")
    return 0
