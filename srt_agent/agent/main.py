"""The agent's phases, in order:

start -> preflight -> infra (NATS, etcd) -> workers -> endpoint (frontends+nginx, or router)
-> health (workers, registration, smoke request) -> [eval: gsm8k/mmlu/gpqa, or the gate before a
sweep] -> benchmark | profiling | manual -> finish.

Any critical process exit, deadline, or SIGTERM/SIGINT/SIGUSR1 (SLURM's early warning) stops
the current phase at a safe point, records why in status.json, and tears everything down.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

import anyio

if sys.version_info < (3, 11):  # pragma: no cover - anyio brings the backport on 3.10
    from exceptiongroup import BaseExceptionGroup

from ..errors import ComponentFailed, SrtError
from ..evals.config import eval_spec
from ..evals.phase import run_eval_phase
from ..node_state import remove_state_dir
from ..report import write_run_report
from ..secrets import split_job_secrets
from ..sync import sync_on_finish
from . import procguard
from .benchmark_phase import run_benchmark
from .custom_benchmark import run_custom_benchmark
from .health import record_dynamo_installs, smoke_request, wait_processes_healthy, wait_registered
from .launchers import Launcher
from .ledger import Ledger, fingerprint
from .host_check import check_host_python
from .preflight import check_engine_flags
from .profiling_phase import run_profiling
from .requeue import requeue_after_warning
from .run_context import LoadedRun, build_plan, load_context, render_scripts
from .supervisor import Supervisor
from .sweep_runner import run_sweep
from .time_to_ready import ReadyClock
from .trace_phase import check_trace_file, run_trace_benchmark

SIGNALS = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT", signal.SIGUSR1: "SIGUSR1 (time limit near)"}


async def _phases(run: LoadedRun, sup: Supervisor, tg, ledger: Ledger) -> None:
    status = run.status
    job = run.job
    status.phase("start")
    clock = ReadyClock(status)  # time to ready (time_to_ready.py)
    await clock.queue_wait(run.launcher.kind, run.job_id, run.metadata)
    clock.begin("node_probe")
    nodes = await run.launcher.discover_nodes(run.resolved.total_nodes)
    clock.end("node_probe")
    sup.plan = plan = build_plan(run, nodes)  # from here on teardown knows the plan (state_dir, tiers)
    ctx = render_scripts(run, plan)
    sup.secret_values = [v for env in ctx.secret_env.values() for v in env.values()]
    status.update(endpoint=plan.endpoint.url, state="running")
    status.phase("start", "done", nodes=[n.name for n in nodes])

    status.phase("preflight")
    clock.begin("preflight")
    await check_host_python(ctx)  # model.container: none
    await check_engine_flags(ctx)
    await check_trace_file(job, run.resolved.job_file)
    clock.end("preflight")
    status.phase("preflight", "done")

    timeouts = job.health
    infra = plan.by_kind("nats") + plan.by_kind("etcd")
    if infra:
        status.phase("infra")
        clock.begin("infra")
        if not run.shared:  # a sweep's shared NATS/etcd keep their state until the sweep ends
            remove_state_dir(plan.state_dir)  # a requeued job starts from empty etcd/NATS state
        for p in infra:
            if p.name not in ctx.shared:  # a sweep in one allocation keeps its NATS/etcd up
                await sup.start(tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])
        await wait_processes_healthy(infra, status, deadline_s=timeouts.infra_timeout_s, what="infra")
        clock.end("infra")
        status.phase("infra", "done")

    status.phase("workers")
    clock.begin("workers")
    workers = plan.by_kind("worker")
    async with anyio.create_task_group() as start_tg:
        for p in workers:
            start_tg.start_soon(sup.start, tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])
    await wait_processes_healthy(workers, status, deadline_s=timeouts.worker_timeout_s, what="workers")
    clock.end("workers")
    record_dynamo_installs(ctx.run_dir, workers, status)
    status.phase("workers", "done")

    status.phase("endpoint")
    clock.begin("endpoint")
    fronts = [p for p in plan.processes if p.kind in ("frontend", "router")]
    for p in fronts:
        await sup.start(tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])
    await wait_processes_healthy(fronts, status, deadline_s=timeouts.frontend_timeout_s, what="frontends")
    record_dynamo_installs(ctx.run_dir, fronts, status)
    nginx = plan.by_kind("nginx")
    for p in nginx:
        await sup.start(tg, p, ctx.scripts[p.name], ctx.secret_env[p.name])
        if ctx.nginx_files is not None:
            status.component(p.name, open_files=ctx.nginx_files.as_dict())
            if ctx.nginx_files.warning:
                status.event("warning", component=p.name, message=ctx.nginx_files.warning)
                print(f"[srt-agent] warning: {ctx.nginx_files.warning}", flush=True)
    await wait_processes_healthy(nginx, status, deadline_s=timeouts.frontend_timeout_s, what="nginx")
    clock.end("endpoint")
    status.phase("endpoint", "done")

    status.phase("health")
    clock.begin("registration")
    registered = await wait_registered(plan, status, deadline_s=timeouts.frontend_timeout_s)
    clock.end("registration")
    clock.begin("smoke_request")
    smoke = await smoke_request(plan, deadline_s=timeouts.frontend_timeout_s)
    clock.end("smoke_request")
    clock.ready()
    status.update(state="ready", message=f"ready at {plan.endpoint.url}")
    status.phase("health", "done", registered=registered, smoke_tokens=smoke["completion_tokens"])

    spec = eval_spec(job.benchmark)
    if spec is not None:  # an eval benchmark, or the accuracy gate in front of a sweep
        status.update(state="evaluating")
        status.phase("eval")
        await run_eval_phase(spec, url=plan.endpoint.url, model=plan.served_model_name, run_dir=ctx.run_dir,
                             ledger=ledger, status=status, max_failed_fraction=job.benchmark.max_failed_fraction)
        status.phase("eval", "done")

    if job.profiling.type != "none":
        status.update(state="profiling")
        status.phase("profiling")
        if ledger.phase_done("profiling"):
            status.event("phase_skipped", phase="profiling", reason="already done")
        else:
            files = await run_profiling(ctx, plan)
            status.update(profiles=files)
            ledger.mark_phase("profiling", files=files)
        status.phase("profiling", "done")
    elif job.benchmark.type == "sa-bench":
        status.update(state="benchmarking")
        status.phase("benchmark")
        await run_benchmark(plan, job, ctx.run_dir, ledger, status, ctx.resolved.model_path)
        ledger.mark_phase("benchmark")
        status.phase("benchmark", "done")
    elif job.benchmark.type == "trace-replay":
        status.update(state="benchmarking")
        status.phase("benchmark")
        await run_trace_benchmark(plan, job, ctx.run_dir, ledger, status, ctx.resolved.model_path)
        ledger.mark_phase("benchmark")
        status.phase("benchmark", "done")
    elif job.benchmark.type == "custom":
        status.update(state="benchmarking")
        status.phase("benchmark")
        await run_custom_benchmark(ctx, plan, ledger, status)
        status.phase("benchmark", "done")
    elif job.benchmark.type == "manual":
        status.phase("manual")
        msg = (f"serving {plan.served_model_name} at {plan.endpoint.url} (OpenAI API: "
               f"{plan.endpoint.url}/v1/completions) until the job ends or is cancelled")
        print(f"[srt-agent] {msg}", flush=True)
        status.update(message=msg)
        await anyio.sleep_forever()


async def _finish(ctx: LoadedRun, ledger: Ledger) -> None:
    """Post-processing that must not be lost: report and optional sync."""
    job = ctx.job
    if job.benchmark.type == "sa-bench" and job.profiling.type == "none":
        try:
            write_run_report(ctx.run_dir)
        except ImportError:
            pass
        except Exception as exc:  # the report is a convenience; the results are already safe
            ctx.status.event("report_failed", error=str(exc))
    cloud = ctx.resolved.cluster.cloud
    if cloud is not None and cloud.sync_on_finish:
        report = await anyio.to_thread.run_sync(
            lambda: sync_on_finish(ctx.run_dir, ctx.resolved.cluster, log=lambda m: print(f"[srt-agent] {m}")))
        if report is not None:
            ctx.status.event("synced", bucket=cloud.bucket, uploaded=len(report.uploaded), skipped=len(report.skipped))
        else:
            ctx.status.event("sync_failed", bucket=cloud.bucket)


async def run_agent(run_dir: Path, launcher: Launcher | None = None, shared: frozenset[str] = frozenset(),
                    requeue: bool = True) -> int:
    """shared: names of processes (NATS, etcd) already running for this run (agent/sweep_runner).
    requeue: after a SIGUSR1 stop under SLURM, requeue the job (agent/requeue; not for sweep members)."""
    ctx = load_context(run_dir, launcher)
    ctx.shared = shared
    guard = ctx.launcher.os_processes  # procguard's OS-level guards only for launchers that start OS processes
    status = ctx.status
    force = os.environ.get("SRT_FORCE_RESUME") == "1"
    try:
        job_json, _ = split_job_secrets(ctx.resolved.job.model_dump(mode="json"))
        ledger = Ledger(run_dir / "ledger.json", fingerprint(job_json), force=force)
    except SrtError as exc:
        status.fail(str(exc))
        print(f"[srt-agent] error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
    if ledger.resumed:
        status.event("resumed", points_done=sorted(ledger.data["points"]))
    outcome: dict = {"stop": None, "error": None}
    work = anyio.CancelScope()

    def on_failure(failure: ComponentFailed) -> None:
        outcome["error"] = outcome["error"] or failure
        work.cancel()

    sup = Supervisor(ctx.launcher, status, None, run_dir, ctx.job.health.shutdown_grace_s, on_failure)
    if guard:
        left = procguard.stop_leftovers(run_dir, grace=ctx.job.health.shutdown_grace_s)
        if left:
            status.event("leftovers_stopped", components=left)
            print(f"[srt-agent] stopped leftovers of an earlier attempt: {', '.join(left)}", flush=True)
        procguard.become_subreaper()
        sup.pids = procguard.PidRecord(run_dir, ctx.launcher.kind, str(status.data["job_id"]))

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(*SIGNALS) as signals:
            async for signum in signals:
                outcome["stop"] = SIGNALS.get(signum, str(signum))
                status.event("signal", signal=outcome["stop"])
                work.cancel()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch_signals)
        with work:
            try:
                await _phases(ctx, sup, tg, ledger)
                outcome["completed"] = True  # a stop signal after this point leaves no work to requeue
            except SrtError as exc:
                outcome["error"] = outcome["error"] or exc
            except BaseExceptionGroup as group:
                outcome["error"] = outcome["error"] or _first_error(group)
                if not isinstance(outcome["error"], SrtError):
                    traceback.print_exception(group)
            except Exception as exc:  # a bug, or several errors at once: record, tear down
                outcome["error"] = outcome["error"] or _first_error(exc)
                traceback.print_exc()
        error, stop = outcome["error"], outcome["stop"]
        if error is not None:
            if not isinstance(error, ComponentFailed):
                status.fail(f"{type(error).__name__}: {error}" if not isinstance(error, SrtError) else str(error))
        status.phase("teardown")
        await sup.stop_all(ordered=error is None)  # after a failure: all at once (fail fast)
        adopted = procguard.stop_adopted_children({h.pid for h in sup.handles.values() if h.pid is not None}) if guard else []
        if adopted:
            status.event("orphans_stopped", pids=adopted)
        if sup.plan is not None and not shared and remove_state_dir(sup.plan.state_dir):
            status.event("state_removed", path=sup.plan.state_dir)
        if error is not None:
            state, code = "failed", getattr(error, "exit_code", 1) or 1
        elif stop is not None:
            state, code = "cancelled", 143 if stop != "SIGINT" else 130
            status.update(message=f"stopped by {stop}; finished work is kept, resume with srtctl apply --resume")
        else:
            state, code = "succeeded", 0
        status.update(state=state)
        status.phase("teardown", "done", outcome=state)
        if error is None:
            with anyio.CancelScope(shield=True):
                await _finish(ctx, ledger)
                if stop == SIGNALS[signal.SIGUSR1] and ctx.launcher.kind == "slurm" and requeue \
                        and not outcome.get("completed"):
                    await requeue_after_warning(status, ctx.job.slurm.max_requeues)
        tg.cancel_scope.cancel()
    if error is not None:
        print(f"[srt-agent] failed: {error}", file=sys.stderr, flush=True)
    return code


def _first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        srt = [e for e in exc.exceptions if isinstance(e, SrtError)]
        exc = srt[0] if srt else exc.exceptions[0]
    return exc


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m srt_agent RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(argv[0]).resolve()
    if (run_dir / "sweep.json").is_file() and not (run_dir / "resolved.json").is_file():
        try:  # a sweep in one allocation (mode allocation)
            return anyio.run(run_sweep, run_dir, run_agent)
        except SrtError as exc:
            print(f"[srt-agent] sweep error: {exc}", file=sys.stderr, flush=True)
            return exc.exit_code
    if not (run_dir / "resolved.json").is_file():
        print(f"error: {run_dir} is not a run directory (no resolved.json)", file=sys.stderr)
        return 2
    try:
        return anyio.run(run_agent, run_dir)
    except SrtError as exc:  # before status.json exists (e.g. unreadable run directory)
        print(f"[srt-agent] error: {exc}", file=sys.stderr, flush=True)
        return exc.exit_code
