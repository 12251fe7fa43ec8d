"""run_point: one benchmark point over several worker processes, and its result file."""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_pipes
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import BenchmarkError
from ..rundir_pids import guarded  # the workers die with the runner (SIGKILL included)
from .config import LoadConfig, split_url
from .metrics import summarize
from .prompts import build_workload
from .records import ItlHistogram
from .worker import WorkerSpec

WARMUP_INDEX_BASE = 1 << 40  # warmup requests get their own global indices, hence own prefixes
START_DELAY_S = 0.2


def _split(items: list, weights: list[int]) -> list[list]:
    """Contiguous split of items proportional to weights."""
    total = sum(weights)
    out, start, acc = [], 0, 0
    for w in weights:
        acc += w
        end = round(len(items) * acc / total)
        out.append(items[start:end])
        start = end
    return out


def _share(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _start_worker(i: int) -> tuple[Connection, subprocess.Popen]:
    """A worker is `python -m srt_agent.loadgen.worker_entry FD`, talking over a socketpair. A plain
    subprocess (not multiprocessing) so callers need no `if __name__ == "__main__"` guard."""
    ours, theirs = socket.socketpair()
    fd = theirs.fileno()

    proc = subprocess.Popen(guarded([sys.executable, "-m", "srt_agent.loadgen.worker_entry", str(fd)]), pass_fds=[fd],
                            stdin=subprocess.DEVNULL)
    theirs.close()
    return Connection(ours.detach()), proc


def _recv_all(pipes: list[Connection], procs: list[subprocess.Popen], expect: str,
              timeout: float | None) -> list:
    """Wait for message `expect` from every worker; a worker error or death raises."""
    got: dict[int, tuple] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while len(got) < len(pipes):
        if deadline is not None and time.monotonic() > deadline:
            raise BenchmarkError(f"load generator workers did not report {expect!r} within {timeout:.0f} s")
        ready = wait_pipes([p for i, p in enumerate(pipes) if i not in got], timeout=0.5)
        for i, p in enumerate(pipes):
            if i in got or p not in ready:
                continue
            try:
                msg = p.recv()
            except (EOFError, OSError):
                procs[i].poll()
                raise BenchmarkError(f"load generator worker {i} died (exit code {procs[i].returncode})")
            if msg[0] == "error":
                raise BenchmarkError(f"load generator worker {i} failed:\n{msg[1]}")
            got[i] = msg
        for i, proc in enumerate(procs):
            if i not in got and proc.poll() is not None and not pipes[i].poll():
                raise BenchmarkError(f"load generator worker {i} died (exit code {proc.returncode})")
    return [got[i] for i in range(len(pipes))]


def worker_spec(config: LoadConfig, worker_id: int, host: str, port: int, path: str, slots: int,
                warmup: list, measured: list, workload) -> WorkerSpec:
    """One worker process's share of a point: its slots, its requests and its part of the rate."""
    rate = config.request_rate
    return WorkerSpec(
        worker_id=worker_id, host=host, port=port, path=path, model=config.model, slots=slots,
        warmup=warmup, measured=measured, workload=workload.subset(warmup + measured),
        request_rate=rate if math.isinf(rate) else rate * slots / config.concurrency,
        seed=config.seed, timeout=config.request_timeout, http=config.http,
        use_uvloop=config.use_uvloop, extra_body=dict(config.extra_body))


@contextlib.contextmanager
def worker_processes(specs: list[WorkerSpec]):
    """Start one worker process per spec and yield (pipes, procs); on leaving, every worker is
    waited for and every pipe closed, whatever happened inside. Leaving on an error stops the
    workers at once (SIGTERM); either way they get one shared 5 s grace, then SIGKILL."""
    pipes: list[Connection] = []
    procs: list[subprocess.Popen] = []
    try:
        for i, spec in enumerate(specs):
            pipe, proc = _start_worker(i)
            pipes.append(pipe)
            procs.append(proc)
            pipe.send(spec)
        yield pipes, procs
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        raise
    finally:
        deadline = time.monotonic() + 5.0
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for p in pipes:
            p.close()


def warm_up(pipes: list[Connection], procs: list[subprocess.Popen], timeout: float | None) -> list:
    """Wait until every worker is connected, then run the warmup; the workers' 'warmed' messages."""
    _recv_all(pipes, procs, "connected", timeout=600.0)
    for p in pipes:
        p.send(("warmup",))
    return _recv_all(pipes, procs, "warmed", timeout=timeout)


def run_point(config: LoadConfig) -> dict:
    """Run one point (warmup, then measured requests) and return its result dict.

    Blocking: starts config.resolved_processes() worker processes (`python -m
    srt_agent.loadgen.worker_entry`); from async code call it via anyio.to_thread.run_sync.
    Raises BenchmarkError when the workers cannot run; an invalid measurement is returned with
    its failures counted: pass the result to check_point to reject it.
    """
    if config.trace_file:
        raise BenchmarkError("a trace replay runs with trace_runner.run_trace, not run_point")
    config.validate()
    host, port, path = split_url(config.url, config.endpoint)
    n, n_warm = config.resolved_num_prompts(), config.num_warmup()
    k = config.resolved_processes()
    measured = list(range(n))
    warmup = list(range(WARMUP_INDEX_BASE, WARMUP_INDEX_BASE + n_warm))
    workload = build_workload(measured + warmup, config.isl, config.osl, seed=config.seed,
                              random_range_ratio=config.random_range_ratio, tokenizer=config.tokenizer)
    slots = _share(config.concurrency, k)
    measured_parts, warmup_parts = _split(measured, slots), _split(warmup, slots)
    rate = config.request_rate
    specs = [worker_spec(config, i, host, port, path, slots[i], warmup_parts[i], measured_parts[i], workload)
             for i in range(k)]
    with worker_processes(specs) as (pipes, procs):
        warmed = warm_up(pipes, procs, timeout=config.phase_timeout)
        start = time.monotonic() + START_DELAY_S
        for p in pipes:
            p.send(("measure", start))
        done = _recv_all(pipes, procs, "done", timeout=config.phase_timeout)
    return measured_result(config, [msg[1] for msg in done], warmed, start=start, max_concurrency=config.concurrency,
                           rate=rate, isl=config.isl, osl=config.osl, num_prompts=n, warmup_prompts=n_warm,
                           random_range_ratio=config.random_range_ratio, prompt_kind=workload.kind, processes=k)


def measured_result(config: LoadConfig, results: list, warmed: list, *, start: float, max_concurrency: int | None,
                    rate: float, isl: int, osl: int, num_prompts: int, warmup_prompts: int,
                    random_range_ratio: float | None, prompt_kind: str, processes: int) -> dict:
    """A measured point's result from its workers' results (records, ITL histograms, CPU), with the
    keys every point carries (run_point's and run_trace's alike)."""
    records = [r for res in results for r in res.records]
    itl = ItlHistogram()
    for res in results:
        itl.merge(res.itl)
    out = summarize(records, start=start, max_concurrency=max_concurrency, request_rate=rate, itl=itl,
                    total_gpus=config.total_gpus, decode_gpus=config.decode_gpus,
                    client_cpu=[res.cpu_fraction for res in results],
                    loop_lag_p99_ms=max(res.loop_lag_p99_ms for res in results),
                    expected_itl_ms=config.expected_itl_ms)
    wall = time.time() - time.monotonic()  # monotonic -> unix seconds
    out.update({
        "measured_start_unix": round(start + wall, 3),  # the measured window (warmup excluded)
        "measured_end_unix": round(start + out["duration"] + wall, 3),
        "model": config.model,
        "isl": isl,
        "osl": osl,
        "num_prompts": num_prompts,
        "warmup_prompts": warmup_prompts,
        "warmup_failed": sum(msg[1] for msg in warmed),
        "random_range_ratio": random_range_ratio,
        "prompt_kind": prompt_kind,
        "seed": config.seed,
        "processes": processes,
        "expected_itl_ms": config.expected_itl_ms,
        "client_peak_rss_mb": [res.peak_rss_mb for res in results],
        "http_client": config.http,
        "client": "srt-loadgen",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return out


def write_result(result: dict, path: str | os.PathLike) -> Path:
    """Write the result JSON atomically and durably (srt_agent.atomic: temp file, fsync, rename)."""

    target = Path(path)
    write_text_atomic(target, json.dumps(result, indent=2, allow_nan=False) + "\n")
    return target
