"""`srtctl status [RUN] [--json]`: a run's state, phase, components, sweep progress and failure.

RUN is a run directory name or prefix, a job id, or a path. Without RUN: the most recent runs.
Reads status.json, metadata.json, ledger.json and results/ of the run, and asks squeue about
SLURM jobs that have not finished (skipped when SLURM cannot be reached).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from srt_agent.errors import ConfigError
from srt_agent.evals.summary import load_eval_results, score_text
from srt_agent.report import load_points, per_gpu_value, per_user_value
from srt_agent.rundir import log_tail, read_json, ready_summary

from .console import COMPONENT_STYLES, HEALTH_STYLES, STATE_STYLES, age_text, console, display, fmt_num
from .run_lookup import RunView, add_logs_dir_argument, find_run, load_view, logs_root, run_dirs
from .runs_cmd import print_runs
from .sweep_view import is_sweep_ref, sweep_status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", nargs="?", metavar="RUN_ID",
                        help="run directory name or prefix, job id, or path (default: list recent runs)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--tail", type=int, default=None, metavar="N",
                        help="with RUN_ID: failure log lines to show (default 20)")
    parser.add_argument("-n", "--limit", type=int, default=None, help="without RUN_ID: runs to list (default 10)")
    add_logs_dir_argument(parser)


def run(args: argparse.Namespace) -> int:
    if args.run and args.limit is not None:
        raise ConfigError("-n/--limit only applies when no RUN_ID is given (it limits the list of runs)",
                          key="--limit", hint=f"drop -n, or run `srtctl status -n {args.limit}`")
    if not args.run and args.tail is not None:
        raise ConfigError("--tail needs a RUN_ID (it limits the failure log lines of one run)", key="--tail",
                          hint="run `srtctl status RUN_ID --tail N`")
    root = logs_root(args.logs_dir)
    if not args.run:
        views = [load_view(p, query_slurm=False) for p in run_dirs(root)[: args.limit or 10]]
        return print_runs(views, as_json=args.json, root=root)
    if is_sweep_ref(args.run, root):  # a sweep id (or its directory): every member's state
        return sweep_status(args.run, root, as_json=args.json)
    view = load_view(find_run(args.run, root))
    if args.json:
        print(json.dumps(status_json(view), indent=2, default=str))
    else:
        console().print(render_view(view, tail=20 if args.tail is None else args.tail))
    return 0 if view.state != "failed" else 1


# ---------------------------------------------------------------------------- data


def sweep_points(view: RunView) -> list[dict]:
    """Per measured point: concurrency and headline metrics (result files, else status.json)."""
    points = load_points(view.path)
    if not points:
        points = list(((view.status or {}).get("benchmark") or {}).get("results") or [])
    gpus = view.metadata.get("gpus")
    out = []
    for p in points:
        out.append({"concurrency": p.get("max_concurrency"), "completed": p.get("completed"),
                    "failed": p.get("failed"), "output_tok_s": p.get("output_throughput"),
                    "output_tok_s_per_gpu": per_gpu_value(p, "total", gpus), "tok_s_per_user": per_user_value(p),
                    "median_ttft_ms": p.get("median_ttft_ms"), "median_tpot_ms": p.get("median_tpot_ms"),
                    "p99_e2el_ms": p.get("p99_e2el_ms")})
    return out


def failed_phase(view: RunView) -> str | None:
    """The phase that was running when the run stopped."""
    phases = (view.status or {}).get("phases") or {}
    running = [name for name, state in phases.items() if state == "running" and name != "teardown"]
    return running[-1] if running else None


def attempts(view: RunView) -> int:
    ledger = read_json(view.path / "ledger.json") or {}
    return len(ledger.get("attempts") or []) or 1


def status_json(view: RunView) -> dict:
    st = view.status or {}
    bench = st.get("benchmark") or {}
    return {
        "run_dir": str(view.path), "run": view.path.name, "job_id": view.job_id, "name": view.name,
        "state": view.state, "phase": view.phase, "executor": view.executor, "topology": view.topology,
        "tags": view.tags, "attempts": attempts(view), "slurm": view.slurm, "agent_gone": view.liveness,
        "message": st.get("message"), "endpoint": st.get("endpoint"),
        "components": st.get("components") or [], "failure": st.get("failure"),
        "failed_phase": failed_phase(view) if view.state in ("failed", "cancelled") or view.liveness else None,
        "benchmark": {"points_total": bench.get("points_total", 0), "points_done": bench.get("points_done", 0),
                      "current": bench.get("current"), "points": sweep_points(view)},
        "time_to_ready": st.get("time_to_ready"),
        "metadata": view.metadata, "status": view.status,
        "evals": _evals(view),
    }


def _evals(view: RunView) -> list[dict]:
    return [{k: r.get(k) for k in ("task", "score", "num_examples", "num_correct", "num_failed", "num_invalid",
                                   "min_score", "passed", "file")} for r in load_eval_results(view.path)]


# ---------------------------------------------------------------------------- rendering


def _styled(text: str, styles: dict[str, str]):
    from rich.text import Text

    return Text(text or "-", style=styles.get(text or "", ""))


def _phases_text(view: RunView):
    from rich.text import Text

    phases = (view.status or {}).get("phases") or {}
    out = Text()
    stopped = view.over
    for i, (name, state) in enumerate(phases.items()):
        if i:
            out.append(" → ", style="dim")
        if state == "done":
            out.append(f"{name} ✓", style="green")
        elif state == "running" and stopped and name != "teardown":
            out.append(f"{name} ✗", style="bold red" if view.state != "cancelled" else "bold yellow")
        elif state == "running":
            out.append(f"{name} …", style="bold cyan")
        else:
            out.append(f"{name} {state}")
    return out


def _slurm_text(slurm: dict) -> str:
    if slurm.get("state") == "GONE":
        return "SLURM: job no longer in the queue"
    text = f"SLURM: {slurm.get('state')}"
    if slurm.get("state") == "PENDING" and slurm.get("reason"):
        text += f" ({slurm['reason']})"
    if slurm.get("elapsed") and slurm.get("state") != "PENDING":
        text += f"  elapsed {slurm['elapsed']} of {slurm.get('time_limit') or '?'}"
    if slurm.get("nodes"):
        text += f"  on {slurm['nodes']}"
    return text


GROUP_ABOVE = 3  # in compact mode, healthy components of one kind beyond this many share a row
_BAD_STATES = ("failed", "exited")


def _counts(values: list) -> str:
    return ", ".join(f"{n} {v or '-'}" for v, n in Counter(values).most_common())


def components_table(view: RunView, compact: bool = False):
    """One row per component; compact: healthy components of a kind with more than GROUP_ABOVE
    members share one row (`frontend x10`), failed ones keep their own."""
    from rich import box
    from rich.table import Table

    table = Table(title="Components", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("component", "kind", "node", "state", "health", "pid", "exit", "log"):
        table.add_column(col, overflow="fold")
    comps = list((view.status or {}).get("components") or [])
    groups: dict[tuple, list[dict]] = {}
    for c in comps:
        groups.setdefault((c.get("kind"), c.get("role")), []).append(c)
    grouped: set[int] = set()
    if compact:
        for key, members in groups.items():
            ok = [c for c in members if c.get("state") not in _BAD_STATES]
            if len(ok) > GROUP_ABOVE:
                grouped.update(id(c) for c in ok)
    done_groups: set[tuple] = set()
    for c in comps:
        kind = c.get("kind") or "-"
        if c.get("role") and c.get("role") != kind:
            kind = f"{kind} ({c['role']})"
        if id(c) in grouped:
            key = (c.get("kind"), c.get("role"))
            if key in done_groups:
                continue
            done_groups.add(key)
            members = [m for m in groups[key] if id(m) in grouped]
            nodes = sorted({m.get("node") or "-" for m in members})
            table.add_row(f"{c.get('kind') or '?'} x{len(members)}", kind,
                          f"{len(nodes)} nodes" if len(nodes) > 2 else ",".join(nodes),
                          _counts([m.get("state") for m in members]), _counts([m.get("health") for m in members]),
                          "-", "-", "-")
            continue
        table.add_row(c.get("name", "?"), kind, c.get("node") or "-", _styled(c.get("state"), COMPONENT_STYLES),
                      _styled(c.get("health"), HEALTH_STYLES), str(c.get("pid") or "-"),
                      "-" if c.get("exit_code") is None else str(c["exit_code"]), c.get("log") or "-")
    return table


def ready_text(st: dict) -> str | None:
    """`time to ready: 42.1 s to ready (queue 3.0, ...)` and the slowest component's own breakdown."""
    line = ready_summary(st.get("time_to_ready"))
    if not line:
        return None
    comps = [c for c in st.get("components") or [] if (c.get("time_to_ready") or {}).get("start_to_ready_s")]
    if comps:
        c = max(comps, key=lambda c: c["time_to_ready"]["start_to_ready_s"])
        t = c["time_to_ready"]
        line += f"\n  slowest {c['name']}: {t['start_to_ready_s']:.1f} s"
        if t.get("process_start_s") is not None:
            line += f" (start to first log line {t['process_start_s']:.1f}, then to healthy {t.get('engine_ready_s', 0):.1f})"
    return "time to ready: " + line


def sweep_renderables(view: RunView) -> list:
    from rich import box
    from rich.table import Table

    bench = (view.status or {}).get("benchmark") or {}
    total, done, current = bench.get("points_total") or 0, bench.get("points_done") or 0, bench.get("current")
    points = sweep_points(view)
    if not total and not points:
        return []
    head = f"[bold]Benchmark sweep[/bold]: {done} of {total} points measured"
    if current is not None and not view.over:
        head += f", measuring concurrency {current}"
    elif current is not None:
        head += f", stopped while measuring concurrency {current}"
    out: list = [head]
    if points:
        table = Table(box=box.SIMPLE_HEAD)
        for col in ("conc", "completed", "failed", "out tok/s", "tok/s/GPU", "tok/s/user", "TTFT p50 ms",
                    "TPOT p50 ms", "E2EL p99 ms"):
            table.add_column(col, justify="right")
        for p in points:
            table.add_row(fmt_num(p["concurrency"]), fmt_num(p["completed"]), fmt_num(p["failed"]),
                          fmt_num(p["output_tok_s"]), fmt_num(p["output_tok_s_per_gpu"]),
                          fmt_num(p["tok_s_per_user"]), fmt_num(p["median_ttft_ms"]),
                          fmt_num(p["median_tpot_ms"], 2), fmt_num(p["p99_e2el_ms"]))
        out.append(table)
        out.append("[dim]tok/s/GPU: output tok/s / all GPUs of the job; tok/s/user: 1000 / mean TPOT[/dim]")
    return out


def failure_renderable(view: RunView, tail: int):
    from rich.panel import Panel
    from rich.text import Text

    st = view.status or {}
    f = st.get("failure")
    if not f and not view.liveness:
        return None
    body = Text()
    if f:
        body.append(f.get("message") or "failed", style="bold")
        where = [f"{k} {f[k]}" for k in ("component", "node", "exit_code") if f.get(k) is not None]
        if where:
            body.append("\n" + ", ".join(where).replace("exit_code", "exit code"))
    if view.liveness:
        body.append(("\n" if f else "") + f"agent gone: {view.liveness}", style="bold")
    phase = failed_phase(view)
    if phase:
        body.append(f"\nstopped during phase: {phase}")
    lines = list((f or {}).get("log_tail") or [])
    comp = (f or {}).get("component")
    log = None
    if comp:
        for c in st.get("components") or []:
            if c.get("name") == comp and c.get("log"):
                log = c["log"]
        if not lines and log:
            lines = log_tail(view.path / log)
    if tail >= 0 and lines:
        shown = lines[-tail:] if tail else []
        if shown:
            body.append(f"\n\nlast {len(shown)} lines of {log or 'the log'}:\n", style="dim")
            body.append("\n".join(shown))
    hint = f"srtctl logs {view.path.name} {comp}" if comp else f"srtctl logs {view.path.name}"
    body.append(f"\n\nfull log: {hint}", style="dim")
    title = "Failure" if f else "Run ended without a final status"
    return Panel(body, title=title, border_style="red" if f else "yellow", expand=False)


def render_view(view: RunView, tail: int = 20, compact: bool = False):
    """The whole status screen of one run. compact (`srtctl watch`, which must fit a screen):
    sweep and failure before the components, components of one kind grouped."""
    from rich.console import Group
    from rich.text import Text

    st = view.status or {}
    head = Text()
    head.append(f"{view.name}", style="bold")
    head.append(f"  job {view.job_id}  {view.topology}  executor {view.executor}")
    if view.tags:
        head.append(f"  tags {','.join(view.tags)}")
    head.append(f"\nrun  {display(view.path)}")
    state = Text()
    state.append("state ")
    state.append(view.state, style=STATE_STYLES.get(view.state, ""))
    state.append(f"   phase {view.phase}")
    if st.get("started_at"):
        state.append(f"   started {age_text(st['started_at'])}, updated {age_text(st.get('updated_at'))}")
    n = attempts(view)
    if n > 1:
        state.append(f"   attempt {n} (resumed)")
    parts: list = [head, state]
    if view.slurm:
        parts.append(_slurm_text(view.slurm))
    if st.get("endpoint"):
        parts.append(f"endpoint {st['endpoint']}")
    if st.get("message"):
        parts.append(Text(f"message: {st['message']}"))
    if not st:
        parts.append("[dim]no status.json yet: the agent has not started[/dim]")
    else:
        parts.append(_phases_text(view))
    ready = ready_text(st)
    if ready:
        parts.append(Text(ready))
    table = components_table(view, compact) if st.get("components") else None
    if table is not None and not compact:
        parts.append(table)
    parts += sweep_renderables(view)
    evals = load_eval_results(view.path)
    if evals:
        parts.append(Text("accuracy: " + "; ".join(score_text(r) for r in evals)))
    if st.get("profiles"):
        parts.append(f"profiles: {', '.join(map(str, st['profiles']))}")
    fail = failure_renderable(view, tail)
    if fail is not None:
        parts.append(fail)
    if table is not None and compact:
        parts.append(table)
    report = view.path / "report" / "report.md"
    if report.is_file():
        parts.append(f"[dim]report: {display(report)}[/dim]")
    return Group(*parts)
