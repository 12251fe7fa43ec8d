"""One self-contained HTML results page (plotly, its JavaScript inlined: no server, no network).

`write_html(runs, path)` draws, for one run or several overlaid (one colour per run):
  pareto      tok/s/GPU against tok/s/user, every point with its concurrency on hover, the
              frontier as a line
  latency     TTFT, TPOT, ITL and E2EL (p50 solid, p99 dotted) against concurrency
  ready       the time-to-ready breakdown of each run (queue wait and each startup step)
  server      the servers' own view per concurrency (server_metrics summary per role: running
              and queued requests, KV token usage, generation throughput)
  frontdoor   the front door's view per concurrency (the `frontend` and `router` roles: requests
              in flight and queued, the frontends' TTFT and ITL, finished requests/s, output
              tok/s); on the page only when some run has them
  window      the scraped series of each run's highest-concurrency point over its measured window
              (with the front door's in-flight and queued requests when the files have them)
Each figure is a `div.srt-plot` (plotly draws into it); the page opens from a run directory
or a bucket as a plain file.
"""

from __future__ import annotations

import html
from pathlib import Path

from .atomic import write_text_atomic
from .metrics_file import read_samples
from .report_data import LATENCY_METRICS, PER_GPU_LABELS, PER_USER_LABEL, pareto_points
from .rundir import ready_summary as summary_line

STEP_ORDER = ("queue", "node_probe", "preflight", "infra", "workers", "endpoint", "registration", "smoke_request")
SERVER_SERIES = (("running", "running requests"), ("queued", "queued requests"),
                 ("token_usage", "KV token usage"), ("gen_throughput", "generation tok/s"))
FRONT_ROLES = ("frontend", "router")
# the window figure's front-door row: (columns, the first one a target has), title
WINDOW_FRONT = [(("frontend_inflight", "router_active"), "front door: requests in flight"),
                (("frontend_queued",), "front door: requests queued")]
# front-door subplots: title, then its lines (role, summary key, name); the first line of a subplot
# is solid, the second dashed. A `*_ms` key is a histogram summary: its mean solid, its p99 dotted.
FRONT_SERIES = (
    ("requests in flight (mean)", (("frontend", "frontend_inflight", "in flight"),
                                   ("router", "router_active", "active"))),
    ("requests queued (mean)", (("frontend", "frontend_queued", "queued"),
                                ("frontend", "frontend_stage_requests", "in preprocess/route/dispatch"))),
    ("frontend TTFT (ms)", (("frontend", "frontend_ttft_ms", "TTFT"),)),
    ("frontend ITL (ms)", (("frontend", "frontend_itl_ms", "ITL"),)),
    ("finished requests/s", (("frontend", "frontend_requests_per_s", "requests/s"),
                             ("router", "router_requests_per_s", "requests/s"))),
    ("output tok/s", (("frontend", "frontend_output_tokens_per_s", "output tok/s"),)),
)


def _colour(i: int) -> str:
    import plotly.colors

    palette = plotly.colors.qualitative.Plotly
    return palette[i % len(palette)]


def pareto_figure(runs, per_gpu: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, run in enumerate(runs):
        pts, frontier = pareto_points(run, per_gpu)
        if not pts:
            continue
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers", name=run.label,
                                 marker={"color": _colour(i), "size": 9}, customdata=[p[2] for p in pts],
                                 hovertemplate="c=%{customdata}<br>%{x:.1f} tok/s/user<br>%{y:.1f} tok/s/GPU"
                                               "<extra>%{fullData.name}</extra>"))
        fig.add_trace(go.Scatter(x=[pts[j][0] for j in frontier], y=[pts[j][1] for j in frontier], mode="lines",
                                 line={"color": _colour(i)}, name=f"{run.label} frontier", hoverinfo="skip",
                                 showlegend=False))
    fig.update_layout(title="Pareto: throughput per GPU against speed per user", xaxis_title=PER_USER_LABEL,
                      yaxis_title=PER_GPU_LABELS[per_gpu], height=520)
    return fig


def latency_figure(runs):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[f"{label} (ms)" for _, label in LATENCY_METRICS])
    for i, run in enumerate(runs):
        for k, (key, label) in enumerate(LATENCY_METRICS):
            row, col = k // 2 + 1, k % 2 + 1
            conc = [p.get("max_concurrency") for p in run.points]
            for stat, dash in (("median", "solid"), ("p99", "dot")):
                ys = [p.get(f"{stat}_{key}_ms") for p in run.points]
                fig.add_scatter(x=conc, y=ys, mode="lines+markers", line={"color": _colour(i), "dash": dash},
                                name=f"{run.label} {stat}", legendgroup=run.label, showlegend=(k == 0),
                                hovertemplate=f"c=%{{x}}<br>{label} {stat} %{{y:.2f}} ms<extra>{html.escape(run.label)}</extra>",
                                row=row, col=col)
    fig.update_xaxes(type="log", title_text="concurrency")
    fig.update_layout(title="Latency against concurrency (p50 solid, p99 dotted)", height=700)
    return fig


def ready_figure(runs):
    import plotly.graph_objects as go

    fig = go.Figure()
    labels = [r.label for r in runs]
    for k, step in enumerate(STEP_ORDER):
        xs = []
        for run in runs:
            ttr = run.time_to_ready or {}
            xs.append(ttr.get("queue_wait_s") if step == "queue" else (ttr.get("steps_s") or {}).get(step))
        if any(x is not None for x in xs):
            fig.add_bar(y=labels, x=xs, orientation="h", name=step.replace("_", " "), marker={"color": _colour(k)},
                        hovertemplate=f"{step.replace('_', ' ')}: %{{x:.2f}} s<extra>%{{y}}</extra>")
    fig.update_layout(barmode="stack", title="Time to ready (seconds): queue wait and each startup step",
                      xaxis_title="seconds", height=max(260, 120 + 60 * len(runs)))
    return fig


def server_figure(runs):
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=2, subplot_titles=[t for _, t in SERVER_SERIES])
    for i, run in enumerate(runs):
        roles = sorted({role for p in run.points for role in ((p.get("server_metrics") or {}).get("roles") or {})})
        for role in roles:
            if role in FRONT_ROLES:  # their own figure: frontdoor_figure
                continue
            for k, (key, title) in enumerate(SERVER_SERIES):
                conc, ys = [], []
                for p in run.points:
                    st = (((p.get("server_metrics") or {}).get("roles") or {}).get(role) or {}).get(key)
                    if isinstance(st, dict):
                        conc.append(p.get("max_concurrency"))
                        ys.append(st.get("mean"))
                fig.add_scatter(x=conc, y=ys, mode="lines+markers", name=f"{run.label} {role}",
                                legendgroup=f"{run.label} {role}", showlegend=(k == 0),
                                line={"color": _colour(i), "dash": "dot" if role == "prefill" else "solid"},
                                hovertemplate=f"c=%{{x}}<br>{title} (mean) %{{y:.4g}}<extra>{html.escape(run.label)} {role}</extra>",
                                row=k // 2 + 1, col=k % 2 + 1)
    fig.update_xaxes(type="log", title_text="concurrency")
    fig.update_layout(title="Server metrics per point (mean over the measured window; decode solid, prefill dotted)",
                      height=700)
    return fig


def _role_value(point: dict, role: str, key: str):
    return (((point.get("server_metrics") or {}).get("roles") or {}).get(role) or {}).get(key)


def frontdoor_figure(runs):
    """Dynamo frontends and the sglang router per point (their server_metrics roles); no traces
    when no run has them."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=3, cols=2, subplot_titles=[t for t, _ in FRONT_SERIES])
    for i, run in enumerate(runs):
        for k, (title, lines) in enumerate(FRONT_SERIES):
            for n, (role, key, what) in enumerate(lines):
                conc, ys, extra, p99, stat = [], [], [], [], ""
                for p in run.points:
                    v = _role_value(p, role, key)
                    if isinstance(v, dict) and v.get("mean") is not None:
                        conc.append(p.get("max_concurrency"))
                        ys.append(v["mean"])
                        stat = " mean"
                        if key.endswith("_ms"):
                            extra.append(f"{v.get('count')} observations; p50 {v.get('p50', '-')}, "
                                         f"p90 {v.get('p90', '-')}, p99 {v.get('p99', '-')} ms")
                            p99.append(v.get("p99"))
                        else:
                            extra.append(f"max {v.get('max')}")
                    elif isinstance(v, (int, float)):
                        conc.append(p.get("max_concurrency"))
                        ys.append(v)
                        extra.append("")
                if not conc:
                    continue
                name = f"{run.label} {role} {what}"
                where = {"row": k // 2 + 1, "col": k % 2 + 1}
                line = f"c=%{{x}}<br>{html.escape(role)} {html.escape(what)}"
                run_label = f"<extra>{html.escape(run.label)}</extra>"
                fig.add_scatter(x=conc, y=ys, customdata=extra, mode="lines+markers", name=name,
                                line={"color": _colour(i), "dash": "dash" if n else "solid"},
                                hovertemplate=f"{line}{stat} %{{y:.4g}}<br>%{{customdata}}{run_label}",
                                **where)
                if key.endswith("_ms") and any(x is not None for x in p99):
                    fig.add_scatter(x=conc, y=p99, mode="lines+markers", name=f"{name} p99",
                                    line={"color": _colour(i), "dash": "dot"},
                                    hovertemplate=f"{line} p99 %{{y:.4g}} ms{run_label}", **where)
    fig.update_xaxes(type="log", title_text="concurrency")
    fig.update_layout(title="Front door per point: Dynamo frontends and the sglang router (over the measured "
                            "window; gauges their mean, TTFT/ITL mean solid and p99 dotted)", height=950)
    return fig


def window_figure(runs):
    """Per target over the measured window of each run's highest-concurrency point; a third row
    (the front door's in-flight and queued requests) when some file has frontend or router columns."""
    from plotly.subplots import make_subplots

    loaded = []
    for i, run in enumerate(runs):
        with_file = [p for p in run.points if (p.get("server_metrics") or {}).get("file")]
        if not with_file:
            continue
        point = with_file[-1]
        try:
            loaded.append((i, run, point, read_samples(run.path / point["server_metrics"]["file"])))
        except (OSError, ValueError, KeyError):
            continue
    series = [((key,), title) for key, title in SERVER_SERIES]
    front = [r for *_, rows in loaded for r in rows if r["role"] in FRONT_ROLES]
    if any(r.get(key) is not None for r in front for keys, _ in WINDOW_FRONT for key in keys):
        series += WINDOW_FRONT
    fig = make_subplots(rows=len(series) // 2, cols=2, subplot_titles=[t for _, t in series])
    for i, run, point, rows in loaded:
        for target in sorted({r["target"] for r in rows}):
            mine = [r for r in rows if r["target"] == target and r["ok"]]
            legend = True
            for k, (keys, title) in enumerate(series):
                key = next((key for key in keys if any(r.get(key) is not None for r in mine)), None)
                if key is None:
                    continue
                fig.add_scatter(x=[r["t"] for r in mine], y=[r.get(key) for r in mine], mode="lines",
                                name=f"{run.label} c={point.get('max_concurrency')} {target}",
                                legendgroup=f"{run.label}{target}", showlegend=legend,
                                line={"color": _colour(i)},
                                hovertemplate=f"t=%{{x:.1f}} s<br>{title} %{{y:.4g}}<extra>{html.escape(target)}</extra>",
                                row=k // 2 + 1, col=k % 2 + 1)
                legend = False
    fig.update_xaxes(title_text="seconds into the measured window")
    fig.update_layout(title="Server metrics over the measured window of each run's highest-concurrency point",
                      height=350 * (len(series) // 2))
    return fig


def write_html(runs, path: Path, per_gpu: str = "total", *, title: str = "Benchmark report") -> Path:
    """The page with every figure; plotly's JavaScript inlined once."""
    from plotly.offline import get_plotlyjs

    figures = [("pareto", pareto_figure(runs, per_gpu)), ("latency", latency_figure(runs)),
               ("ready", ready_figure(runs)), ("server", server_figure(runs))]
    front = frontdoor_figure(runs)
    if front.data:
        figures.append(("frontdoor", front))
    figures.append(("window", window_figure(runs)))
    parts = [f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:1em 2em} .srt-plot{margin-bottom:1.5em}</style>",
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1><ul>"]
    for run in runs:
        ready = "time to ready: " + (summary_line(run.time_to_ready) or "not recorded")
        parts.append(f"<li><b>{html.escape(run.label)}</b>: {len(run.points)} points; {html.escape(ready)}"
                     f"<br><small>{html.escape(str(run.path))}</small></li>")
    parts.append("</ul>")
    for name, fig in figures:
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"plot-{name}",
                          config={"displaylogo": False, "responsive": True})
        parts.append(f"<div class='srt-plot' data-plot='{name}'>{div}</div>")
    parts.append("</body></html>\n")
    write_text_atomic(path, "\n".join(parts))
    return path
