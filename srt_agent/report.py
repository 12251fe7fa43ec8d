"""Plots and a markdown summary of one or more benchmark sweeps.

The agent calls write_run_report(run_dir) when a benchmark job ends (<run>/report/);
`srtctl report RUN...` calls write_report() to overlay several runs. Plots need the optional
extra `report` (matplotlib); without it only the markdown is written, and it says so.

Axes (definitions from srt_agent.loadgen.metrics):
  tok/s/user = tok_s_per_user = 1000 / mean TPOT (ms), TPOT = (E2EL - TTFT) / (output tokens - 1)
  tok/s/GPU  = output_tok_s_per_gpu = output tok/s / all GPUs of the job (prefill + decode), or
               with per_gpu="decode": output_tok_s_per_decode_gpu = output tok/s / decode GPUs
               (aggregated runs have no decode-only GPUs: their value is per GPU of the job)
Figures are built with matplotlib's object API on the Agg canvas: no display is needed.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from .atomic import write_bytes_atomic, write_text_atomic
from .evals.summary import load_eval_results
from .evals.summary import markdown as eval_markdown
from .report_data import (  # noqa: F401  (the rest re-exported: srtctl status/runs/report and tests read them here)
    LATENCY_METRICS,
    PER_GPU_KEYS,
    PER_GPU_LABELS,
    PER_USER_LABEL,
    RunData,
    _concurrency,
    load_points,
    load_run,
    pareto_frontier,
    pareto_points,
    per_gpu_value,
    per_user_value,
)
from .report_html import write_html
from .rundir import ready_summary as summary_line

NO_MATPLOTLIB = ("plots skipped: matplotlib is not installed (install the `report` extra: "
                 "pip install 'srt-slurm[report]')")
REPORT_DIR = "report"


# ---------------------------------------------------------------------------- figures


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colour(i: int):
    import matplotlib

    return matplotlib.colormaps["tab10"](i % 10)


def pareto_figure(runs: list[RunData], per_gpu: str = "total"):
    """tok/s/GPU against tok/s/user: every point of each sweep (labelled c=N) and its frontier.

    Per run: a line labelled with the run label (the frontier) and a marker-only line with
    gid "points:<label>" (every point, in concurrency order).
    """
    fig = _new_figure(9, 6)
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        pts, front = pareto_points(run, per_gpu)
        if not pts:
            continue
        colour = _colour(i)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="none", marker="o", markersize=5,
                alpha=0.45, color=colour, label="_nolegend_", gid=f"points:{run.label}")
        ax.plot([pts[k][0] for k in front], [pts[k][1] for k in front], linestyle="-", linewidth=2,
                marker="o", markersize=7, color=colour, label=run.label, gid=f"frontier:{run.label}")
        for x, y, c in pts:
            ax.annotate(f"c={c}", (x, y), textcoords="offset points", xytext=(6, 5 - 11 * (i % 3)), fontsize=7,
                        color=colour)
    ax.set_xlabel(PER_USER_LABEL)
    ax.set_ylabel(PER_GPU_LABELS[per_gpu].split(" (")[0])
    ax.set_title("Throughput per GPU vs per-user speed (Pareto frontier over the concurrency sweep)", fontsize=11)
    ax.grid(True, alpha=0.3)
    xs = [x for line in ax.get_lines() for x in line.get_xdata()]
    ys = [y for line in ax.get_lines() for y in line.get_ydata()]
    if xs and ys:  # from 0, with room on the right for the c=N labels
        ax.set_xlim(0, max(xs) * 1.12 or 1.0)
        ax.set_ylim(0, max(ys) * 1.08 or 1.0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    isl_osl = sorted({r.isl_osl for r in runs if r.points})
    ax.text(0.0, -0.1, f"y: {PER_GPU_LABELS[per_gpu]}\nx: tok/s/user = 1000 / mean TPOT (ms).  "
            f"ISL/OSL {', '.join(isl_osl) or '?'}.  Large markers joined by a line: each run's Pareto frontier; "
            "small markers: the other points.", transform=ax.transAxes, fontsize=7.5, color="0.3", ha="left",
            va="top")
    return fig


def latency_figure(runs: list[RunData]):
    """TTFT, TPOT, ITL, E2EL against concurrency, p50 (solid, label '<run> p50') and p99
    (dashed, label '<run> p99') per run, one colour per run."""
    from matplotlib.ticker import NullLocator

    fig = _new_figure(12, 8.5)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, title) in zip(axes, LATENCY_METRICS):
        for i, run in enumerate(runs):
            pts = [p for p in run.points if _concurrency(p) > 0]
            if not pts:
                continue
            conc = [_concurrency(p) for p in pts]
            colour = _colour(i)
            for stat, style, marker in (("median", "-", "o"), ("p99", "--", "^")):
                vals = [p.get(f"{stat}_{key}_ms") for p in pts]
                xs = [c for c, v in zip(conc, vals) if v is not None]
                ys = [float(v) for v in vals if v is not None]
                name = "p50" if stat == "median" else "p99"
                ax.plot(xs, ys, linestyle=style, marker=marker, markersize=4, color=colour,
                        label=f"{run.label} {name}")
        ax.set_xscale("log", base=2)
        ticks = sorted({_concurrency(p) for r in runs for p in r.points if _concurrency(p) > 0})
        if ticks:
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("concurrency (max requests in flight)")
        ax.set_ylabel(f"{title} (ms)")
        ax.set_title(f"{title} p50 (solid) and p99 (dashed)", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ys = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
        if ys and max(ys) / min(ys) > 50:
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle("Latency vs concurrency", fontsize=12)
    return fig


def _save_png(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_bytes_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------- markdown


def _f(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


SUMMARY_COLUMNS = ["conc", "completed", "failed", "req/s", "out tok/s", "out tok/s/GPU", "tok/s/user",
                   "TTFT p50/p99 ms", "TPOT p50/p99 ms", "ITL p50/p99 ms", "E2EL p50/p99 ms", "frontier"]


def summary_rows(run: RunData, per_gpu: str = "total") -> list[list[str]]:
    pts, front = pareto_points(run, per_gpu)
    on_front = {pts[k][2] for k in front}
    rows = []
    for p in run.points:
        c = _concurrency(p)
        lat = [f"{_f(p.get(f'median_{k}_ms'))} / {_f(p.get(f'p99_{k}_ms'))}" for k, _ in LATENCY_METRICS]
        rows.append([str(c), _f(p.get("completed")), _f(p.get("failed")), _f(p.get("request_throughput"), 2),
                     _f(p.get("output_throughput")), _f(per_gpu_value(p, per_gpu, run.gpus)),
                     _f(per_user_value(p)), *lat, "yes" if c in on_front else ""])
    return rows


def summary_markdown(runs: list[RunData], per_gpu: str = "total", plots: list[str] | None = None,
                     note: str | None = None) -> str:
    out = ["# Benchmark report", ""]
    if note:
        out += [f"> {note}", ""]
    for name in plots or []:
        out += [f"![{Path(name).stem}]({name})", ""]
    for run in runs:
        m = run.metadata
        out += [f"## {run.label}", "",
                f"- run directory: `{run.path}`",
                f"- mode {m.get('mode', '?')}, topology {m.get('topology', '?')}, {run.gpus or '?'} GPUs"
                + (f" ({run.decode_gpus} decode)" if run.decode_gpus else "")
                + f", ISL/OSL {run.isl_osl}" + (f", tags {', '.join(m['tags'])}" if m.get("tags") else ""), ""]
        if run.time_to_ready:
            out[-1:-1] = [f"- time to ready: {summary_line(run.time_to_ready)}"]
        evals = load_eval_results(run.path)
        out += eval_markdown(evals)
        if not run.points:
            if not evals:
                out += ["No valid benchmark points (the run failed or has not measured any yet).", ""]
            continue
        out += ["| " + " | ".join(SUMMARY_COLUMNS) + " |", "|" + "---:|" * len(SUMMARY_COLUMNS)]
        out += ["| " + " | ".join(row) + " |" for row in summary_rows(run, per_gpu)]
        out.append("")
        warns = [(p.get("max_concurrency"), w) for p in run.points for w in p.get("client_warnings") or []]
        if warns:
            out += ["Client warnings:", ""] + [f"- c={c}: {w}" for c, w in warns] + [""]
    out += ["## Definitions", "",
            f"- out tok/s/GPU: {PER_GPU_LABELS[per_gpu]}.",
            "- tok/s/user: 1000 / mean TPOT (ms); TPOT = (E2EL - TTFT) / (output tokens - 1).",
            ("- TTFT: first token-carrying event - scheduled send time; E2EL: last byte - scheduled send time; "
             "ITL: gaps between token-carrying events. p50 = median."),
            ("- frontier: the point is on the run's Pareto frontier (no other point of the run has both "
             "higher tok/s/GPU and higher tok/s/user)."), ""]
    return "\n".join(out)


# ---------------------------------------------------------------------------- writers


def plotly_available() -> bool:
    try:
        import plotly  # noqa: F401
    except ImportError:
        return False
    return True


def write_report(run_dirs: list[str | Path], out_dir: str | Path, *, per_gpu: str = "total",
                 plots: bool = True, html_page: bool = True,
                 labels: list[str | None] | None = None) -> dict[str, Path]:
    """Write pareto.png, latency.png (if matplotlib is there and plots), report.html (if plotly is
    there: srt_agent/report_html.py) and report.md into out_dir.
    Returns {"markdown": path, "pareto": path, "latency": path, "html": path} for what was written.
    labels: per run, a label to show first (a sweep member's swept values)."""
    if per_gpu not in PER_GPU_KEYS:
        raise ValueError(f"per_gpu must be one of {sorted(PER_GPU_KEYS)}")
    runs = [load_run(d) for d in run_dirs]
    for run, label in zip(runs, labels or []):
        if label:
            run.label = f"{label}  ({run.label})"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    note = None
    if not any(r.points for r in runs):
        note = "no benchmark points to plot"
    elif not plots:
        note = "plots not requested"
    elif matplotlib_available():
        _save_png(pareto_figure(runs, per_gpu), out / "pareto.png")
        _save_png(latency_figure(runs), out / "latency.png")
        written["pareto"], written["latency"] = out / "pareto.png", out / "latency.png"
    else:
        note = NO_MATPLOTLIB
    plots = [p.name for k, p in written.items()]
    if html_page and plots and any(r.points for r in runs) and plotly_available():
        written["html"] = write_html(runs, out / "report.html", per_gpu)
    write_text_atomic(out / "report.md", summary_markdown(runs, per_gpu, plots, note))
    written["markdown"] = out / "report.md"
    return written


def write_run_report(run_dir: str | Path) -> Path:
    """The agent's end-of-benchmark report: <run_dir>/report/. Returns that directory."""
    out = Path(run_dir) / REPORT_DIR
    write_report([run_dir], out, html_page=False)  # the ~5 MB page only on request: srtctl report
    return out
