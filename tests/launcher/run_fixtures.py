"""Run directories for the monitoring tests, written by the project's own writers.

Every file comes from the code that writes it in a real run, so its format cannot drift:
job.yaml/resolved.json/job.sbatch/metadata.json from launcher.prepare (prepare, metadata,
write_files), plan.json from srt_agent.plan.make_plan, status.json and events.jsonl from
StatusWriter (called in the order and with the fields the agent and its supervisor use),
ledger.json from Ledger, per-point results from loadgen.metrics.summarize + runner.write_result,
rollup.json/csv from benchmark_phase.write_rollup.

Builders: succeeded_run, failed_run (a worker exits during startup), running_run (mid-sweep),
resumed_run (cancelled by SIGUSR1 after two points, then resumed and finished).
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import yaml

from launcher.prepare import metadata, prepare, run_suffix, write_files
from srt_agent.agent.benchmark_phase import ROLLUP_KEYS, point_key, write_rollup
from srt_agent.agent.ledger import Ledger, fingerprint
from srt_agent.agent.status import StatusWriter, now
from srt_agent.agent.time_to_ready import ReadyClock
from srt_agent.atomic import write_json_atomic
from srt_agent.loadgen.metrics import summarize
from srt_agent.loadgen.records import RequestRecord
from srt_agent.loadgen.runner import write_result
from srt_agent.plan import NodeInfo, Plan, PlanInputs, make_plan
from srt_agent.rundir import log_tail

DISAGG_ROUTER = {  # the simulated engine behind the sglang router, 1 prefill + N decode workers
    "name": "fixture-disagg",
    "model": {"path": "sim-model"},
    "resources": {"gpu_type": "sim", "prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1,
                  "decode_workers": 1, "gpus_per_node": 4},
    "backend": {"engine": "sim", "use_sglang_router": True,
                "sglang_config": {"prefill": {"tensor-parallel-size": 4}, "decode": {"tensor-parallel-size": 4}}},
    "benchmark": {"type": "sa-bench", "isl": 512, "osl": 32, "concurrencies": [1, 4, 16, 64], "req_rate": "inf"},
}
DISAGG_NGINX = {  # Dynamo mocker workers behind nginx + Dynamo frontends (NATS, etcd)
    **DISAGG_ROUTER,
    "name": "fixture-nginx",
    "resources": {"gpu_type": "sim", "prefill_nodes": 1, "decode_nodes": 2, "prefill_workers": 1,
                  "decode_workers": 2, "gpus_per_node": 4},
    "backend": {"engine": "dynamo-mocker", "use_sglang_router": False,
                "sglang_config": {"prefill": {"tensor-parallel-size": 4}, "decode": {"tensor-parallel-size": 4}}},
}
AGG = {
    **DISAGG_ROUTER,
    "name": "fixture-agg",
    "resources": {"gpu_type": "sim", "agg_nodes": 1, "agg_workers": 2, "gpus_per_node": 4},
    "backend": {"engine": "sim", "use_sglang_router": True,
                "sglang_config": {"aggregated": {"tensor-parallel-size": 2}}},
}


@dataclass
class Fixture:
    root: Path          # the logs directory
    run_dir: Path
    job_id: str
    plan: Plan
    status: StatusWriter
    meta: dict
    ledger: Ledger | None = None


def write_cluster(root: Path) -> Path:
    """srtslurm.yaml for the local executor whose logs_dir is `root`; a model directory beside it."""
    model = root.parent / "model"
    model.mkdir(parents=True, exist_ok=True)
    path = root.parent / "srtslurm.yaml"
    path.write_text(yaml.safe_dump({"executor": "local", "container_runtime": "none", "node_addresses": "loopback",
                                    "model_paths": {"sim-model": str(model)}, "logs_dir": str(root)}))
    root.mkdir(parents=True, exist_ok=True)
    return path


def new_run(root: Path, job: dict, *, job_id: str, timestamp: str, tags: str | None = None,
            submitted_at: str | None = None, executor: str = "local", **changes) -> Fixture:
    """What `srtctl apply` writes, then what the agent writes before its first phase."""
    cluster = write_cluster(root)
    job = {**job, **changes}
    job_file = root.parent / f"{job['name']}.yaml"
    job_file.write_text(yaml.safe_dump(job, sort_keys=False))
    prep = prepare(job_file, tags=tags, cluster_file=cluster, local=True)
    run_dir = root / f"{job_id}{run_suffix(prep.resolved, timestamp)}"
    meta = metadata(prep, job_id, executor)
    if submitted_at:
        meta["submitted_at"] = submitted_at
    import json

    write_files(run_dir, {**prep.files, "metadata.json": json.dumps(meta, indent=2) + "\n"})
    nodes = [NodeInfo(name=f"local{i}", address="127.0.0.1") for i in range(prep.resolved.total_nodes)]
    plan = make_plan(prep.resolved, PlanInputs(
        job_id=job_id, nodes=nodes, log_dir=str(run_dir), srtctl_root=str(root.parent),
        host_python="python3", configs_dir=str(root.parent), setup_script=None))
    write_json_atomic(run_dir / "plan.json", plan.model_dump(mode="json"))
    for sub in ("launch", "logs", "infra", "nginx", "results", "profiles"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    status = StatusWriter(run_dir, job_id=job_id, name=prep.resolved.job.name, executor=executor)
    return Fixture(root=root, run_dir=run_dir, job_id=job_id, plan=plan, status=status, meta=meta)


def log_lines(fx: Fixture, name: str, lines: list[str]) -> None:
    proc = fx.plan.process(name)
    with open(fx.run_dir / "logs" / proc.log, "a") as f:
        f.write("".join(line + "\n" for line in lines))


def start_process(fx: Fixture, name: str, pid: int) -> None:
    """What Supervisor.start writes, plus the launcher log and the first lines of the process log."""
    p = fx.plan.process(name)
    fx.status.component(p.name, kind=p.kind, role=p.role, node=p.node, port=p.port, state="starting",
                        health="unknown", started_at=now(), log=f"logs/{p.log}")
    (fx.run_dir / "logs" / f"{p.name}.launcher.log").write_text(f"[launcher] {p.name} on {p.node}\n")
    log_lines(fx, name, [f"{p.name} starting on {p.node} port {p.port}"])
    fx.status.component(p.name, pid=pid, step=None, state="running")
    fx.status.component(p.name, first_log_at=now())  # Supervisor._first_log_line


def ready(fx: Fixture, names: list[str], what: str) -> None:
    for i, name in enumerate(names):
        fx.status.component(name, health="healthy", state="ready", ready_at=now())
        log_lines(fx, name, [f"{name} ready"])
        fx.status.update(message=f"{what}: {i + 1} of {len(names)} ready")


def start_all(fx: Fixture) -> None:
    """Phases start .. health, as agent.main._phases runs them."""
    s, plan = fx.status, fx.plan
    s.phase("start")
    clock = ReadyClock(s)
    anyio.run(clock.queue_wait, "local", fx.job_id, fx.meta)
    clock.begin("node_probe")
    clock.end("node_probe")
    s.update(endpoint=plan.endpoint.url, state="running")
    s.phase("start", "done", nodes=[n.name for n in plan.nodes])
    s.phase("preflight")
    s.phase("preflight", "done")
    pid = 4000
    infra = [p.name for p in plan.processes if p.kind in ("nats", "etcd")]
    if infra:
        s.phase("infra")
        for name in infra:
            pid += 1
            start_process(fx, name, pid)
        ready(fx, infra, "infra")
        s.phase("infra", "done")
    s.phase("workers")
    clock.begin("workers")
    workers = [p.name for p in plan.by_kind("worker")]
    for name in workers:
        pid += 1
        start_process(fx, name, pid)
    ready(fx, workers, "workers")
    clock.end("workers")
    s.phase("workers", "done")
    s.phase("endpoint")
    fronts = [p.name for p in plan.processes if p.kind in ("frontend", "router")]
    for name in fronts:
        pid += 1
        start_process(fx, name, pid)
    ready(fx, fronts, "frontends")
    for p in plan.by_kind("nginx"):
        pid += 1
        start_process(fx, p.name, pid)
    s.phase("endpoint", "done")
    s.phase("health")
    clock.begin("registration")
    clock.end("registration")
    clock.ready()
    s.update(state="ready", message=f"ready at {plan.endpoint.url}")
    s.phase("health", "done", registered={"router_workers": len(plan.workers)}, smoke_tokens=8)


def synth_point(c: int, *, isl: int, osl: int, total_gpus: int, decode_gpus: int | None,
                speed: float = 1.0) -> dict:
    """A result dict from loadgen.metrics.summarize over made-up requests: latency grows with
    concurrency (TTFT 20 ms + 1 ms per request in flight, TPOT 5 ms x (1 + c/32)) / speed."""
    ttft = (0.020 + 0.001 * c) / speed
    tpot = 0.005 * (1 + c / 32) / speed
    n = max(2 * c, 8)
    records = []
    start = 1000.0
    for i in range(n):
        sched = start + (i // c) * (ttft + tpot * (osl - 1)) + (i % 7) * 1e-4
        first = sched + ttft * (1 + (i % 5) * 0.1)
        chunks = [first + k * tpot for k in range(osl)]
        records.append(RequestRecord(index=i, scheduled=sched, ready=sched, sent=sched + 1e-4, first_token=first,
                                     end=chunks[-1], ok=True, output_tokens=osl, input_tokens=isl,
                                     requested_output_tokens=osl, usage_reported=True, n_chunks=osl,
                                     chunk_times=chunks))
    out = summarize(records, start=start, max_concurrency=c, total_gpus=total_gpus, decode_gpus=decode_gpus,
                    client_cpu=[0.2], loop_lag_p99_ms=0.5)
    out.update({"model": "sim-model", "isl": isl, "osl": osl, "num_prompts": n, "client": "srt-loadgen"})
    return out


def run_points(fx: Fixture, ledger: Ledger, concurrencies: list[int], *, stop_after: int | None = None,
               speed: float = 1.0) -> list[dict]:
    """The benchmark phase (benchmark_phase.run_benchmark's writes) over `concurrencies`.
    stop_after=k: return after k newly measured points, leaving the sweep unfinished."""
    job = fx.plan
    b = yaml.safe_load((fx.run_dir / "job.yaml").read_text())["benchmark"]
    isl, osl = b["isl"], b["osl"]
    decode = job.decode_gpus if job.mode == "disaggregated" else None
    s = fx.status
    results: list[dict] = []
    s.benchmark(points_total=len(concurrencies),
                points_done=sum(1 for c in concurrencies if ledger.point_done(point_key(isl, osl, c))))
    measured = 0
    for c in concurrencies:
        done = ledger.point_done(point_key(isl, osl, c))
        if done and (fx.run_dir / done).is_file():
            import json

            results.append(json.loads((fx.run_dir / done).read_text()))
            s.event("point_skipped", concurrency=c, reason="already measured", file=done)
            continue
        if stop_after is not None and measured >= stop_after:
            s.benchmark(current=c)
            s.event("point_start", concurrency=c)
            return results
        out = fx.run_dir / "results" / f"result_isl{isl}_osl{osl}_c{c}.json"
        s.benchmark(current=c)
        s.event("point_start", concurrency=c)
        result = synth_point(c, isl=isl, osl=osl, total_gpus=job.total_gpus, decode_gpus=decode, speed=speed)
        with open(fx.run_dir / "logs" / "benchmark.log", "a") as f:
            f.write(f"python -m srt_agent.loadgen --concurrency {c}\nconcurrency {c} completed "
                    f"{result['completed']}\n")
        write_result(result, out)
        rel = str(out.relative_to(fx.run_dir))
        ledger.mark_point(point_key(isl, osl, c), rel)
        results.append(result)
        measured += 1
        s.event("point_done", concurrency=c, file=rel, output_throughput=result.get("output_throughput"))
        s.benchmark(points_done=sum(1 for p in concurrencies if ledger.point_done(point_key(isl, osl, p))), current=None,
                    results=[{k: r.get(k) for k in ROLLUP_KEYS[:7]} for r in results])
    write_rollup(results, fx.run_dir / "results")
    return results


def teardown(fx: Fixture, state: str, *, stopped: list[str] | None = None) -> None:
    s = fx.status
    s.phase("teardown")
    for name in stopped if stopped is not None else [p.name for p in fx.plan.processes]:
        if fx.status.data["components"].get(name, {}).get("state") not in (None, "failed", "exited"):
            s.component(name, state="stopped", exit_code=0, exited_at=now())
    s.update(state=state)
    s.phase("teardown", "done", outcome=state)


def new_ledger(fx: Fixture) -> Ledger:
    from srt_agent.resolved import ResolvedJob

    job = ResolvedJob.read(fx.run_dir / "resolved.json").job
    return Ledger(fx.run_dir / "ledger.json", fingerprint(job.model_dump(mode="json")))


# ---------------------------------------------------------------------------- builders


def succeeded_run(root: Path, *, job: dict = DISAGG_ROUTER, job_id: str = "1001",
                  timestamp: str = "20260110_120000", tags: str | None = "baseline,sim",
                  submitted_at: str | None = None, speed: float = 1.0, **changes) -> Fixture:
    fx = new_run(root, job, job_id=job_id, timestamp=timestamp, tags=tags, submitted_at=submitted_at, **changes)
    ledger = new_ledger(fx)
    start_all(fx)
    fx.status.update(state="benchmarking")
    fx.status.phase("benchmark")
    run_points(fx, ledger, list(job.get("benchmark", {}).get("concurrencies") or [1, 4, 16, 64]), speed=speed)
    ledger.mark_phase("benchmark")
    fx.status.phase("benchmark", "done")
    teardown(fx, "succeeded")
    return fx


def failed_run(root: Path, *, job_id: str = "1002", timestamp: str = "20260111_090000",
               tags: str | None = "sim") -> Fixture:
    """decode-0 dies with exit code 1 while the workers start (what Supervisor._watch records)."""
    fx = new_run(root, DISAGG_ROUTER, job_id=job_id, timestamp=timestamp, tags=tags)
    new_ledger(fx)
    s, plan = fx.status, fx.plan
    s.phase("start")
    clock = ReadyClock(s)
    anyio.run(clock.queue_wait, "local", fx.job_id, fx.meta)
    clock.begin("node_probe")
    clock.end("node_probe")
    s.update(endpoint=plan.endpoint.url, state="running")
    s.phase("start", "done")
    s.phase("preflight")
    s.phase("preflight", "done")
    s.phase("workers")
    start_process(fx, "prefill-0", 5001)
    start_process(fx, "decode-0", 5002)
    ready(fx, ["prefill-0"], "workers")
    tail = [f"loading weights shard {i}/8" for i in range(6)] + [
        "Traceback (most recent call last):", "RuntimeError: CUDA out of memory (simulated)"]
    log_lines(fx, "decode-0", tail)
    p = plan.process("decode-0")
    tail = log_tail(fx.run_dir / "logs" / p.log)
    s.component("decode-0", state="failed", exit_code=1, exited_at=now(), health="down")
    s.fail(f"decode-0 on {p.node} exited with code 1", component="decode-0", node=p.node, exit_code=1,
           log_tail=tail)
    teardown(fx, "failed", stopped=["prefill-0"])
    return fx


def running_run(root: Path, *, job_id: str = "1003", timestamp: str = "20260112_080000",
                tags: str | None = "sim,wip", points_done: int = 2) -> Fixture:
    """Mid-sweep: `points_done` of 4 points measured, the next one in progress."""
    fx = new_run(root, DISAGG_NGINX, job_id=job_id, timestamp=timestamp, tags=tags)
    # an agent on another machine: this one cannot check its pid, so liveness falls back to the
    # age of status.json (a same-host agent_pid that is not an agent means "agent died" at once)
    fx.status.data["agent_host"] = "fixture-host"
    fx.ledger = ledger = new_ledger(fx)
    start_all(fx)
    fx.status.update(state="benchmarking")
    fx.status.phase("benchmark")
    run_points(fx, ledger, [1, 4, 16, 64], stop_after=points_done)
    return fx


def resumed_run(root: Path, *, job_id: str = "1004", timestamp: str = "20260113_070000",
                tags: str | None = "sim,resume") -> Fixture:
    """First attempt: SIGUSR1 after two points -> cancelled. Second attempt (same run dir, new
    StatusWriter as a new agent process makes): resumed, skips both points, finishes."""
    fx = new_run(root, DISAGG_ROUTER, job_id=job_id, timestamp=timestamp, tags=tags)
    ledger = new_ledger(fx)
    start_all(fx)
    fx.status.update(state="benchmarking")
    fx.status.phase("benchmark")
    run_points(fx, ledger, [1, 4, 16, 64], stop_after=2)
    fx.status.event("signal", signal="SIGUSR1 (time limit near)")
    teardown(fx, "cancelled")
    fx.status.update(message="stopped by SIGUSR1 (time limit near); finished work is kept, resume with "
                             "srtctl apply --resume")
    # second attempt
    fx.status = StatusWriter(fx.run_dir, job_id=job_id, name=fx.meta["name"], executor="local")
    ledger = new_ledger(fx)
    assert ledger.resumed
    fx.status.event("resumed", points_done=sorted(ledger.data["points"]))
    start_all(fx)
    fx.status.update(state="benchmarking")
    fx.status.phase("benchmark")
    run_points(fx, ledger, [1, 4, 16, 64])
    ledger.mark_phase("benchmark")
    fx.status.phase("benchmark", "done")
    teardown(fx, "succeeded")
    return fx


def pending_slurm_run(root: Path, *, job_id: str = "1005", timestamp: str = "20260114_060000") -> Fixture:
    """Submitted to SLURM, not started: no status.json yet."""
    fx = new_run(root, DISAGG_ROUTER, job_id=job_id, timestamp=timestamp, executor="slurm")
    return fx


def make_stale(fx: Fixture, seconds: float = 3600) -> None:
    """Age status.json as if its agent died `seconds` ago."""
    t = time.time() - seconds
    os.utime(fx.run_dir / "status.json", (t, t))


def all_runs(root: Path) -> dict[str, Fixture]:
    return {"succeeded": succeeded_run(root), "failed": failed_run(root), "running": running_run(root),
            "resumed": resumed_run(root)}


# ---------------------------------------------------------------------------- shared, built once

_SHARED: dict[str, Path] = {}
SHARED_IDS = {"succeeded": "1001", "failed": "1002", "running": "1003", "resumed": "1004", "pending": "1005",
              "agg": "1006", "fast": "1007"}


@contextlib.contextmanager
def no_fsync():
    """Skip fsync while building fixtures (durability only; the bytes written are the same)."""
    real = os.fsync
    os.fsync = lambda fd: None
    try:
        yield
    finally:
        os.fsync = real


def shared_logs(tmp_path_factory) -> Path:
    """A logs directory with one run of each kind (ids in SHARED_IDS), built once per session.
    Read it, never change it: copy_logs() gives a private copy to change."""
    if "root" not in _SHARED:
        # the status writer's progress lines are not the output of the test that builds it first
        with no_fsync(), contextlib.redirect_stdout(io.StringIO()):
            _SHARED["root"] = _build_shared(tmp_path_factory.mktemp("shared-runs") / "logs")
    return _SHARED["root"]


def _build_shared(root: Path) -> Path:
    all_runs(root)
    pending_slurm_run(root)
    succeeded_run(root, job=AGG, job_id="1006", timestamp="20260115_050000", tags="sim,agg")
    succeeded_run(root, job_id="1007", timestamp="20260116_040000", tags="sim,fast", speed=2.0)
    return root


def copy_logs(tmp_path_factory, dst: Path) -> Path:
    import shutil

    src = shared_logs(tmp_path_factory)
    shutil.copytree(src, dst, symlinks=True)
    return dst


def run_dir(root: Path, kind: str) -> Path:
    job_id = SHARED_IDS[kind]
    return next(p for p in root.iterdir() if p.name.startswith(f"{job_id}_"))


def touch(path: Path) -> None:
    """Mark a run's status.json as just written (a live agent)."""
    os.utime(path / "status.json")
