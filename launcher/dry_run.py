"""`srtctl dry-run -f FILE`: everything apply would submit, written to dry-runs/, nothing submitted."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from srt_agent.custom_command import render_script
from srt_agent.launch_script import render_launch_script
from srt_agent.nginx import render_nginx_conf
from srt_agent.rundir import configs_dir, srtctl_root
from srt_agent.secrets import is_secret_name, redact_env, redact_text
from srt_agent.templating import render

from .console import display
from .prepare import slug, write_files
from .summary import commands_text, print_summary
from .sweep_cmd import add_override_arguments, load_request, member_rows, print_table, sweep_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", required=True, help="job YAML")
    parser.add_argument("--setup-script", help="script name inside configs/ run on every worker node")
    parser.add_argument("--tags", help="comma-separated tags")
    parser.add_argument("--local", action="store_true", help="plan for the local executor")
    parser.add_argument("--output-dir", default="dry-runs", help="where to write (default: dry-runs/)")
    parser.add_argument("--quiet", action="store_true", help="no summary, only the output directory")
    add_override_arguments(parser)


def render_files(prep) -> dict[str, str]:
    files = dict(prep.files)
    files["plan.json"] = json.dumps(_redacted_plan(prep.plan), indent=2) + "\n"
    files["commands.txt"] = commands_text(prep.plan, preamble=_placeholder_note(prep))
    if prep.plan.nats_url:
        files["infra/nats.conf"] = render("nats.conf.j2", max_payload=prep.resolved.job.backend.nats_max_payload)
    if any(p.kind == "nginx" for p in prep.plan.processes):
        ep = prep.plan.endpoint
        files["nginx.conf"] = render_nginx_conf(
            ep.address, ep.port, [(f.address, f.port) for f in prep.plan.frontends],
            f"{prep.run_dir_placeholder}/nginx", extra_listen_ports=ep.extra_ports,
            affinity_header=prep.resolved.job.backend.nginx_session_affinity_header)
    job = prep.resolved.job
    if job.benchmark.type == "custom":  # what the agent will run once the endpoint is ready
        in_container = any(p.kind == "worker" and p.container for p in prep.plan.processes)
        files["custom-benchmark.sh"] = render_script(prep.plan, job.benchmark, base="/logs" if in_container else prep.run_dir_placeholder)
    run_dir, configs, root = prep.run_dir_placeholder, str(configs_dir(prep.cluster)), srtctl_root(prep.cluster)
    for p in prep.plan.processes:
        text, _secret = render_launch_script(prep.plan, p, log_dir=run_dir, configs_dir=configs,
                                             setup_script=prep.setup_script, dynamo_cache=f"{root}/.cache",
                                             bin_dir=f"{root}/bin", srtctl_root=str(root))
        files[f"launch/{p.name}.sh"] = text
    return _without_secrets(prep, files)


def _placeholder_note(prep) -> str:
    names = [n.name for n in prep.plan.nodes]
    where = "srun steps" if prep.plan.executor == "slurm" else "processes"
    return (f"# Dry run: the {where} apply would start. {', '.join(names)} and their addresses are\n"
            f"# placeholders: in the allocation the agent plans again with its nodes (scontrol show hostnames) and\n"
            f"# the real job id (JOBID below); ports shift with the job id.\n")


def _without_secrets(prep, files: dict[str, str]) -> dict[str, str]:
    """job.yaml and resolved.json carry the job's environment verbatim; secrets never reach dry-runs/."""
    b = prep.resolved.job.backend
    values = [v for env in (b.prefill_environment, b.decode_environment, b.aggregated_environment, b.frontend_environment)
              for k, v in env.items() if is_secret_name(k) and v]
    return {name: redact_text(text, values) for name, text in files.items()} if values else files


def _redacted_plan(plan) -> dict:
    data = plan.model_dump(mode="json")
    for p in data["processes"]:
        p["env"] = redact_env(p["env"])
    return data


def run(args: argparse.Namespace) -> int:
    req = load_request(args)
    if req.sweep is not None:
        return dry_run_sweep(req, args.output_dir, args.quiet)
    prep = req.prep
    files = render_files(prep)
    out = Path(args.output_dir) / f"{slug(prep.resolved.job.name)}_{prep.timestamp}"
    n = 1
    while out.exists():
        n += 1
        out = Path(args.output_dir) / f"{slug(prep.resolved.job.name)}_{prep.timestamp}_{n}"
    tmp = out.with_name(out.name + ".partial")
    write_files(tmp, files)
    tmp.rename(out)
    if not args.quiet:
        print_summary(prep.resolved, prep.plan, title="Dry run")
        print(f"Wrote {len(files)} files to {display(out)}/ (nothing submitted)")
    else:
        print(display(out))
    return 0


def dry_run_sweep(req, output_dir: str, quiet: bool) -> int:
    """A sweep's dry run: one directory per member and sweep.json (mode allocation: the allocation's
    job.sbatch too), everything rendered before anything is written."""
    assert req.sweep and req.preps
    out = Path(output_dir) / req.sweep_id
    n = 1
    while out.exists():
        n += 1
        out = Path(output_dir) / f"{req.sweep_id}_{n}"
    rows = member_rows(req)
    files = {f"{m.name}/{name}": text for m, prep in zip(req.sweep.members, req.preps)
             for name, text in render_files(prep).items()}  # everything rendered before anything is written
    for r in rows:
        r["dry_run_dir"] = r["name"]
    files["sweep.json"] = sweep_json(req, rows)
    if req.sweep.mode == "allocation":
        from .sweep_alloc import allocation_files  # lazy, CLI start-up: dry-run loads no submit machinery

        files.update(allocation_files(req, run_dir="SWEEP_DIR"))
    tmp = out.with_name(out.name + ".partial")
    write_files(tmp, files)
    tmp.rename(out)
    if quiet:
        print(display(out))
        return 0
    print_table(req, rows, "Dry run of a sweep")
    print(f"Wrote {len(req.preps)} members to {display(out)}/ (sweep.json, one directory per member; "
          "nothing submitted)")
    return 0
