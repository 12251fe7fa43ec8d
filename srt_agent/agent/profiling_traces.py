"""Trace files of the profiling phase: which files are new since the profiler started, and waiting
until every target has one and they stop growing."""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from ..errors import ProfilingError
from .profiling_targets import NsysOutput, ProfileTarget

SETTLE_S = 2.0  # files must keep their names and sizes this long before they count as written
POLL_S = 0.5
NSYS_SUFFIXES = (".nsys-rep", ".qdrep")


def _is_trace_name(name: str) -> bool:
    return not name.startswith(".") and not name.endswith((".tmp", ".partial", ".lock"))


def _list_files(directory: Path) -> dict[Path, int]:
    """Regular files under `directory` (recursively; SGLang may add sub-directories) -> size."""
    out: dict[Path, int] = {}
    if not directory.is_dir():
        return out
    for p in directory.rglob("*"):
        try:
            if p.is_file() and _is_trace_name(p.name):
                out[p] = p.stat().st_size
        except OSError:
            continue
    return out


def _nsys_files(out: NsysOutput) -> dict[Path, int]:
    found: dict[Path, int] = {}
    parent, stem = out.host_stem.parent, out.host_stem.name
    if not parent.is_dir():
        return found
    for p in parent.iterdir():
        if p.name.startswith(stem + ".") and p.name.endswith(NSYS_SUFFIXES):
            try:
                found[p] = p.stat().st_size
            except OSError:
                continue
    return found


def snapshot(targets: list[ProfileTarget]) -> dict[Path, tuple[int, float]]:
    snap: dict[Path, tuple[int, float]] = {}
    for t in targets:
        paths = list(_list_files(t.host_dir))
        for n in t.nsys:
            paths += list(_nsys_files(n))
        for p in paths:
            try:
                st = p.stat()
                snap[p] = (st.st_size, st.st_mtime)
            except OSError:
                pass
    return snap


def _new(files: dict[Path, int], before: dict[Path, tuple[int, float]]) -> dict[Path, int]:
    out = {}
    for p, size in files.items():
        old = before.get(p)
        if old is None:
            out[p] = size
            continue
        try:
            if p.stat().st_mtime != old[1] or size != old[0]:
                out[p] = size
        except OSError:
            pass
    return out


def collect_traces(targets: list[ProfileTarget], before: dict[Path, tuple[int, float]]
                   ) -> tuple[dict[Path, int], list[str]]:
    """(new trace files -> size, descriptions of targets that have none yet)."""
    files: dict[Path, int] = {}
    missing: list[str] = []
    for t in targets:
        if t.nsys:
            for n in t.nsys:
                got = {p: s for p, s in _new(_nsys_files(n), before).items() if s > 0}
                if not got:
                    missing.append(f"{t.worker} (role {t.role}) on {n.node}: no {n.host_stem.name}.nsys-rep "
                                   f"in {n.host_stem.parent}")
                files.update(got)
        else:
            got = {p: s for p, s in _new(_list_files(t.host_dir), before).items() if s > 0}
            if not got:
                missing.append(f"{t.worker} (role {t.role}): no trace in {t.host_dir}")
            files.update(got)
    return files, missing


async def wait_for_traces(targets: list[ProfileTarget], before: dict[Path, tuple[int, float]], *,
                          deadline_s: float, settle_s: float = SETTLE_S, poll_s: float = POLL_S,
                          hint: str = "see the worker logs in logs/") -> list[Path]:
    """Every target has at least one new non-empty file and no file changed for `settle_s`."""
    start = time.monotonic()
    last: dict[Path, int] | None = None
    stable_since = start
    while True:
        files, missing = collect_traces(targets, before)
        now = time.monotonic()
        if files != last:
            last, stable_since = files, now
        if not missing and now - stable_since >= settle_s:
            return sorted(files)
        if now - start > deadline_s:
            if missing:
                raise ProfilingError(
                    f"profiling produced no trace after {deadline_s:.0f} s for {len(missing)} of "
                    f"{_count(targets)}: " + "; ".join(missing)
                    + f" ({hint})")
            return sorted(files)  # present but still growing at the deadline: report what is there
        await anyio.sleep(poll_s)


def _count(targets: list[ProfileTarget]) -> str:
    n = sum(max(1, len(t.nsys)) for t in targets)
    return f"{n} expected trace {'source' if n == 1 else 'sources'}"
