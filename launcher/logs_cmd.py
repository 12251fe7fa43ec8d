"""`srtctl logs RUN [COMPONENT] [-f] [-n N]`: print or follow a component's log.

COMPONENT is a component name or its prefix (`prefill-0`, `decode`, `router`, `nginx`), or one of
`benchmark` (logs/benchmark.log), `profiling` (logs/profiling.log), `agent` (the batch job's
slurm-<id>.out) and `nginx-error` (nginx/error.log).
`NAME.srun` / `NAME.launcher` pick the srun or local launcher output of a component. A prefix
that matches several components prints each log under a `==> name <==` header (followed logs
are prefixed `[name]`). Without COMPONENT: the list of the run's logs. -f follows until the
run reaches a final state (or its agent is gone), or Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from srt_agent.errors import RunNotFound
from srt_agent.rundir import read_json

from .console import console
from .run_lookup import RunView, add_logs_dir_argument, find_run, follow_views, load_view, logs_root

FOLLOW_POLL_S = 0.5


@dataclass
class LogEntry:
    key: str             # what the user types: component name, NAME.srun, benchmark, agent, ...
    path: Path
    component: str | None = None
    node: str | None = None
    what: str = "process output"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", metavar="RUN_ID", help="run directory name or prefix, job id, or path")
    parser.add_argument("component", nargs="?", metavar="COMPONENT",
                        help="component name or prefix (prefill-0, decode, router, benchmark, agent); "
                             "omit to list the run's logs")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the run ends")
    parser.add_argument("-n", "--lines", type=int, metavar="N", help="start with the last N lines (default: all)")
    parser.add_argument("--interval", type=float, default=FOLLOW_POLL_S, help=argparse.SUPPRESS)
    add_logs_dir_argument(parser)


def available_logs(view: RunView) -> list[LogEntry]:
    """Every log of the run, components first (in start order), known or not yet written."""
    run_dir = view.path
    logs = run_dir / "logs"
    entries: list[LogEntry] = []
    seen: set[Path] = set()

    def add(entry: LogEntry) -> None:
        if entry.path not in seen:
            seen.add(entry.path)
            entries.append(entry)

    components = list((view.status or {}).get("components") or [])
    plan_procs = _plan_processes(run_dir)
    known = {c.get("name") for c in components}
    components += [p for p in plan_procs if p["name"] not in known]
    for c in components:
        name, node = c.get("name"), c.get("node")
        rel = c.get("log") or (f"logs/{node}_{name}.log" if node else None)
        if rel:
            add(LogEntry(name, run_dir / rel, name, node))
        for suffix, what in (("srun", "srun client output"), ("launcher", "local launcher output")):
            add(LogEntry(f"{name}.{suffix}", logs / f"{name}.{suffix}.log", name, node, what))
    if logs.is_dir():
        for p in sorted(logs.glob("*.log")):
            if p in seen:
                continue
            stem = p.name[: -len(".log")]
            if stem == "benchmark":
                add(LogEntry("benchmark", p, what="load generator output"))
            elif stem == "profiling":
                add(LogEntry("profiling", p, what="profiling load generator output"))
            elif stem.endswith((".srun", ".launcher")):
                add(LogEntry(stem, p, stem.rsplit(".", 1)[0], what=f"{stem.rsplit('.', 1)[1]} output"))
            elif "_" in stem:
                node, name = stem.split("_", 1)
                add(LogEntry(name, p, name, node))
            else:
                add(LogEntry(stem, p))
    add(LogEntry("benchmark", logs / "benchmark.log", what="load generator output"))
    for p in sorted(run_dir.glob("slurm-*.out")):
        add(LogEntry("agent", p, what="agent (batch script) output"))
    if (run_dir / "nginx" / "error.log").exists():
        add(LogEntry("nginx-error", run_dir / "nginx" / "error.log", "nginx", what="nginx error log"))
    return entries


def _plan_processes(run_dir: Path) -> list[dict]:
    plan = read_json(run_dir / "plan.json") or {}
    out = []
    for p in plan.get("processes") or []:
        if isinstance(p, dict) and p.get("name") and p.get("node"):
            out.append({"name": p["name"], "node": p["node"], "log": f"logs/{p['node']}_{p['name']}.log"})
    return out


def match(entries: list[LogEntry], ref: str) -> list[LogEntry]:
    """Exact key first; else every key starting with ref (launcher/srun variants only when ref
    names them). Components whose main log is missing fall back to their launcher output."""
    exact = [e for e in entries if e.key == ref]
    if exact:
        chosen = exact
    else:
        chosen = [e for e in entries if e.key.startswith(ref) and ("." in ref or not _variant(e.key))]
    out = []
    for e in chosen:
        if not e.path.exists() and not _variant(e.key) and e.component:
            alt = [v for v in entries if v.component == e.component and _variant(v.key) and v.path.exists()]
            if alt:
                out.append(alt[0])
                continue
        out.append(e)
    return out


def _variant(key: str) -> bool:
    return key.endswith((".srun", ".launcher"))


def list_logs(view: RunView, entries: list[LogEntry]) -> None:
    """One row per component (its output, and its srun/launcher output as `NAME.srun` etc.)."""
    from rich import box
    from rich.table import Table

    table = Table(title=f"Logs of {view.path.name}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("component", "node", "what", "size", "file", "launcher output"):
        table.add_column(col, overflow="fold")
    variants: dict[str, list[LogEntry]] = {}
    for e in entries:
        if _variant(e.key) and e.path.exists():
            variants.setdefault(e.component or "", []).append(e)
    rows = 0
    for e in entries:
        if _variant(e.key):
            continue
        extra = ", ".join(f"{v.key} ({_size(v.path.stat().st_size)})" for v in variants.get(e.component or "", [])
                          if e.component)
        if not e.path.exists() and not extra:
            continue
        size = _size(e.path.stat().st_size) if e.path.exists() else "-"
        table.add_row(e.key, e.node or "-", e.what, size,
                      str(e.path.relative_to(view.path)) if e.path.exists() else "(not written)", extra or "-")
        rows += 1
    if not rows:
        print(f"{view.path.name}: no logs written yet")
        return
    console().print(table)
    print(f"show one: srtctl logs {view.path.name} COMPONENT   (prefix works; NAME.launcher or NAME.srun for "
          f"launcher output)   follow: -f")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def tail_bytes(path: Path, lines: int | None) -> tuple[bytes, int]:
    """(content to print first, offset to follow from)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return b"", 0
    if lines is None:
        return data, len(data)
    kept = deque(data.splitlines(keepends=True), maxlen=max(lines, 0))
    return b"".join(kept), len(data)


class Follower:
    """Polls files for appended bytes; with several files, prefixes whole lines by key."""

    def __init__(self, entries: list[LogEntry], out, prefix: bool) -> None:
        self.entries = entries
        self.out = out
        self.prefix = prefix
        self.offsets: dict[Path, int] = {}
        self.partial: dict[Path, bytes] = {}

    def start(self, lines: int | None) -> None:
        for e in self.entries:
            data, off = tail_bytes(e.path, lines)
            self.offsets[e.path] = off
            self._emit(e, data)
        self.out.flush()

    def poll(self) -> bool:
        """Print what was appended since last time; True if anything was."""
        got = False
        for e in self.entries:
            off = self.offsets.get(e.path, 0)
            try:
                size = e.path.stat().st_size
            except FileNotFoundError:
                continue
            if size < off:  # truncated or replaced: start over
                off = 0
            if size == off:
                continue
            with open(e.path, "rb") as f:
                f.seek(off)
                data = f.read(size - off)
            self.offsets[e.path] = off + len(data)
            self._emit(e, data)
            got = True
        if got:
            self.out.flush()
        return got

    def finish(self) -> None:
        for e in self.entries:
            self._flush_partial(e)
        self.out.flush()

    def _emit(self, e: LogEntry, data: bytes) -> None:
        if not data:
            return
        if not self.prefix:
            self.out.write(data.decode(errors="replace"))
            return
        text = self.partial.pop(e.path, b"") + data
        lines = text.split(b"\n")
        if lines[-1]:
            self.partial[e.path] = lines[-1]
        for line in lines[:-1]:
            self.out.write(f"[{e.key}] {line.decode(errors='replace')}\n")

    def _flush_partial(self, e: LogEntry) -> None:
        rest = self.partial.pop(e.path, b"")
        if rest:
            self.out.write((f"[{e.key}] " if self.prefix else "") + rest.decode(errors="replace") + "\n")


def print_logs(entries: list[LogEntry], lines: int | None, out=None) -> None:
    out = out or sys.stdout
    many = len(entries) > 1
    for i, e in enumerate(entries):
        data, _ = tail_bytes(e.path, lines)
        if many:
            out.write(("\n" if i else "") + f"==> {e.key} ({e.path.name}) <==\n")
        text = data.decode(errors="replace")
        out.write(text)
        if text and not text.endswith("\n"):
            out.write("\n")
    out.flush()


def follow(view: RunView, entries: list[LogEntry], lines: int | None, *, interval: float = FOLLOW_POLL_S,
           out=None, max_seconds: float | None = None) -> RunView:
    """Print, then follow until the run is over (final state or agent gone). Returns the last view."""
    out = out or sys.stdout
    f = Follower(entries, out, prefix=len(entries) > 1)
    f.start(lines)
    for view in follow_views(view, interval=interval, max_seconds=max_seconds):
        f.poll()
    if view.over:
        time.sleep(min(interval, 0.2))
        f.poll()  # what was written just before the final status
    f.finish()
    return view


def run(args: argparse.Namespace) -> int:
    view = load_view(find_run(args.run, logs_root(args.logs_dir)), query_slurm=False)
    entries = available_logs(view)
    if not args.component:
        list_logs(view, entries)
        return 0
    chosen = match(entries, args.component)
    if not chosen:
        names = sorted({e.key for e in entries if e.path.exists() and not _variant(e.key)})
        raise RunNotFound(f"no log matching '{args.component}' in {view.path.name}; available: "
                          f"{', '.join(names) or 'none yet'}")
    if not args.follow:
        missing = [e for e in chosen if not e.path.exists()]
        if len(missing) == len(chosen):
            raise RunNotFound(f"{', '.join(e.key for e in missing)}: no log written yet "
                              f"({missing[0].path.relative_to(view.path)}); -f waits for it")
        print_logs([e for e in chosen if e.path.exists()], args.lines)
        return 0
    final = follow(load_view(view.path), chosen, args.lines, interval=args.interval)
    if final.liveness:
        print(f"[srtctl] stopped following: {final.liveness}", file=sys.stderr)
    else:
        cause = ((final.status or {}).get("failure") or {}).get("message") if final.state == "failed" else None
        print(f"[srtctl] run {final.state}" + (f": {cause}" if cause else ""), file=sys.stderr)
    return 0
