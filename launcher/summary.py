"""The readable summary dry-run and apply print (rich): nodes by role, workers, ports, endpoint."""

from __future__ import annotations

import os

from srt_agent.client_plan import describe
from srt_agent.evals.config import eval_spec
from srt_agent.plan import Plan
from srt_agent.resolved import ResolvedJob
from srt_agent.secrets import redact_env


def commands_text(plan: Plan, *, preamble: str | None = None) -> str:
    """Every command of the plan, one block per process, secrets redacted: the argv that starts the
    process (its srun step) when the plan has one, then its launch script's environment and command."""
    import shlex

    out = [preamble] if preamble else []
    for p in plan.processes:
        out.append(f"# {p.name}  ({p.kind}{' ' + p.role if p.role else ''}) on {p.node}"
                   + (f"  GPUs {','.join(map(str, p.gpus))}" if p.gpus else "")
                   + (f"  port {p.port}" if p.port else "") + ("  [container]" if p.container else ""))
        if p.launch:
            out.append("# started by:")
            out.append(shlex.join(p.launch))
            out.append(f"# launch/{p.name}.sh runs:")
        for k, v in sorted(redact_env(p.env).items()):
            out.append(f"export {k}={shlex.quote(v)}")
        out.append(shlex.join(p.command))
        out.append("")
    return "\n".join(out)


def print_summary(resolved: ResolvedJob, plan: Plan, *, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    job = resolved.job
    console.print(f"[bold]{title}[/bold]: {job.name}  ({job.mode}, engine {job.backend.engine})")
    host = next((p.python for p in plan.processes if p.kind == "worker" and not p.container), None)
    console.print(f"model {resolved.model_path}  container "
                  + (resolved.container or f"none (host processes, Python {host or 'of each command'})"))
    console.print(f"slurm: account={resolved.account or '-'} partition={resolved.partition or '-'} "
                  f"time={resolved.time_limit or '-'}  nodes={resolved.total_nodes} x {resolved.gpus_per_node} GPUs")
    nodes = Table(title="Nodes", show_lines=False)
    for col in ("node", "roles"):
        nodes.add_column(col)
    for n in plan.nodes:
        nodes.add_row(n.name, ", ".join(dict.fromkeys(n.roles)))
    console.print(nodes)
    workers = Table(title="Workers")
    for col in ("worker", "nodes", "GPUs/node", "tp", "dp", "ep", "port", "bootstrap"):
        workers.add_column(col)
    for w in plan.workers:
        workers.add_row(w.name, ",".join(w.nodes), str(len(w.gpus)), str(w.tp), str(w.dp), str(w.ep),
                        str(w.http_port or "-"), str(w.bootstrap_port or "-"))
    console.print(workers)
    fronts = plan.frontends
    console.print(f"endpoint: {plan.endpoint.kind} on {plan.endpoint.node} port {plan.endpoint.port}"
                  + (f"; {len(fronts)} Dynamo frontend(s) on {', '.join(sorted({f.node for f in fronts}))}"
                     if fronts else ""))
    if plan.nats_url:
        console.print(f"infra: NATS {plan.nats_url}  etcd {plan.etcd_url}")
    b = job.benchmark
    spec = eval_spec(b)
    if spec is not None:
        console.print(f"{'accuracy gate' if b.type == 'sa-bench' else 'benchmark'}: {spec.task} "
                      f"{spec.dataset_path} num_examples={spec.num_examples or 'all'} num_shots={spec.num_shots} "
                      f"concurrency={spec.concurrency} max_tokens={spec.max_tokens}"
                      + (f" min_score={spec.min_score}" if spec.min_score is not None else "")
                      + (f" repeat={spec.repeat}" if spec.repeat > 1 else ""))
    if job.profiling.type != "none":
        p = job.profiling
        console.print(f"profiling: {p.type} isl={p.isl} osl={p.osl} concurrency={p.concurrency} "
                      f"steps {p.start_step}..{p.stop_step}")
    elif b.type == "sa-bench":
        console.print(f"benchmark: sa-bench isl={b.isl} osl={b.osl} concurrencies={b.concurrencies} "
                      f"req_rate={b.req_rate}")
        if line := describe(job, plan):
            console.print(line)
    elif b.type == "trace-replay":
        found = "" if os.path.isfile(b.trace_file) else " (not on this machine: the agent's preflight checks it)"
        console.print(f"benchmark: trace-replay {b.trace_file}{found} caps={b.concurrencies or 'none'} "
                      f"goodput ttft<={b.ttft_threshold_ms} ms itl<={b.itl_threshold_ms} ms")
    elif b.type == "manual":
        console.print("benchmark: manual (serve until the job ends)")
    console.print(f"ports: block starting at {plan.port_base} (shifted per job id)")
