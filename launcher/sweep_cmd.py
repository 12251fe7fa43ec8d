"""Sweeps and --set/--unset for dry-run and apply: load the job file with its overrides, expand a
`sweep:` into members (srt_agent.sweep), write a sweep's dry-run and submit its members.

Every member is prepared (validated, planned, rendered) before anything is written or submitted.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.resolved import resolve_job
from srt_agent.sweep import Sweep, apply_overrides, expand, short_keys
from srt_agent.yaml_source import YamlDocument, load_yaml

from .paths import display, logs_dir
from .prepare import Prepared, load_cluster, prepare, prepare_resolved, slug


def add_override_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="set_values",
                        help="override one value of the job file (VALUE is YAML; repeatable), "
                             "e.g. --set resources.decode_workers=2")
    parser.add_argument("--unset", action="append", default=[], metavar="PATH", dest="unset_values",
                        help="remove one key of the job file (repeatable)")


@dataclass
class Request:
    """What -f FILE with its overrides asks for: one job (prep) or a sweep."""

    cluster: ClusterConfig
    doc: YamlDocument
    prep: Prepared | None = None
    sweep: Sweep | None = None
    preps: list[Prepared] | None = None  # one per sweep member, same order
    sweep_id: str = ""
    timestamp: str = ""
    overrides: dict | None = None
    name: str = ""  # the base job's name


def load_request(args: argparse.Namespace) -> Request:
    sets, unsets = getattr(args, "set_values", []) or [], getattr(args, "unset_values", []) or []
    local = getattr(args, "local", False)
    doc = load_yaml(args.file)
    data = doc.data if isinstance(doc.data, dict) else None
    if not sets and not unsets and (data is None or "sweep" not in data):
        return Request(cluster=None, doc=doc,  # type: ignore[arg-type]
                       prep=prepare(args.file, setup_script=args.setup_script, tags=args.tags, local=local))
    cluster = load_cluster(None, local)
    if data is None:  # let the normal loader report it
        return Request(cluster=cluster, doc=doc, prep=prepare(args.file, setup_script=args.setup_script,
                                                              tags=args.tags, local=local))
    data = apply_overrides(data, sets, unsets)
    from srt_agent.sweep import redacted_overrides

    overrides = {"set": redacted_overrides(sets), "unset": list(unsets)}  # as written down: no secret values
    ts = datetime.now().strftime("%Y%m%d_%H%M%S")
    job_path = Path(args.file)
    if "sweep" not in data:
        mdoc = YamlDocument(path=doc.path, data=data, lines=doc.lines)
        resolved = resolve_job(mdoc, cluster)
        text = _override_header(overrides) + yaml.safe_dump(data, sort_keys=False)
        return Request(cluster=cluster, doc=doc, overrides=overrides,
                       prep=prepare_resolved(resolved, cluster, job_path, text, setup_script=args.setup_script,
                                             tags=args.tags, timestamp=ts))
    sweep = expand(doc, data, cluster)
    if sweep.mode == "allocation":
        from srt_agent.sweep import check_allocation

        check_allocation(sweep, doc)
    preps = [prepare_resolved(m.resolved, cluster, job_path, _override_header(overrides) + m.text(str(job_path)),
                              setup_script=args.setup_script, tags=args.tags, timestamp=ts)
             for m in sweep.members]  # type: ignore[arg-type]
    return Request(cluster=cluster, doc=doc, sweep=sweep, preps=preps, timestamp=ts, overrides=overrides,
                   sweep_id=f"{slug(str(data.get('name') or 'sweep'))}_{ts}", name=str(data.get("name") or ""))


def _override_header(overrides: dict) -> str:
    parts = [f"--unset {u}" for u in overrides["unset"]] + [f"--set {s}" for s in overrides["set"]]
    return f"# srtctl: with {' '.join(parts)}\n" if parts else ""


def member_rows(req: Request) -> list[dict]:
    assert req.sweep and req.preps
    rows = []
    for m, prep in zip(req.sweep.members, req.preps):
        r = prep.resolved
        rows.append({"name": m.name, "values": m.values, "nodes": r.total_nodes, "gpus": r.total_gpus,
                     "workers": {role: lay.workers for role, lay in r.layouts.items()},
                     "topology": prep.topology})
    return rows


def sweep_json(req: Request, rows: list[dict], *, executor: str | None = None, job_id: str | None = None) -> str:
    assert req.sweep
    data = {"schema": 1, "sweep_id": req.sweep_id, "name": req.name, "mode": req.sweep.mode, "job_file": str(Path(req.doc.path).resolve()),
            "keys": req.sweep.keys, "labels": short_keys(req.sweep.keys), "overrides": req.overrides,
            "created_at": datetime.now().astimezone().isoformat(timespec="seconds"),
            "executor": executor, "job_id": job_id,
            "allocation_nodes": max(r["nodes"] for r in rows) if req.sweep.mode == "allocation" else None,
            "members": rows}
    if req.sweep.mode == "allocation" and req.sweep.nodes:
        data["allocation_nodes"] = req.sweep.nodes
    return json.dumps(data, indent=2, default=str) + "\n"


def print_table(req: Request, rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    assert req.sweep
    labels = short_keys(req.sweep.keys)
    table = Table(title=f"{title}: {len(rows)} members (mode {req.sweep.mode})", title_justify="left")
    table.add_column("member", no_wrap=True)
    for k in req.sweep.keys:
        table.add_column(labels[k], no_wrap=True)
    for col in ("nodes", "GPUs", "workers"):
        table.add_column(col, justify="right")
    for r in rows:
        workers = "".join(f"{n}{role[0].upper()}" for role, n in r["workers"].items())
        table.add_row(r["name"], *[str(r["values"][k]) for k in req.sweep.keys], str(r["nodes"]), str(r["gpus"]),
                      workers)
    console = Console()
    console.print(table)
    console.print("  " + "; ".join(f"{labels[k]} = {k}" for k in req.sweep.keys), soft_wrap=True)


# ---- dry-run -------------------------------------------------------------------------------

def dry_run_sweep(req: Request, output_dir: str, quiet: bool) -> int:
    from .dry_run import render_files
    from .prepare import write_files

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
        from .sweep_alloc import allocation_files

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


# ---- apply, mode jobs ----------------------------------------------------------------------

def sweep_dir(req: Request) -> Path:
    return logs_dir(req.cluster) / "sweeps" / req.sweep_id


def apply_sweep(req: Request, local: bool) -> int:
    assert req.sweep and req.preps
    if req.sweep.mode == "allocation":
        from .sweep_alloc import apply_allocation

        return apply_allocation(req, local)
    if local:
        return _apply_local(req)
    return _apply_slurm(req)


def _apply_slurm(req: Request) -> int:
    import secrets

    from . import sbatch
    from .apply_cmd import _json
    from .prepare import metadata, write_files

    logs = logs_dir(req.cluster)
    rows = member_rows(req)
    submitted: list[tuple[str, Path]] = []  # (job id, directory) to undo on any failure
    try:
        for m, prep, row in zip(req.sweep.members, req.preps, rows):  # type: ignore[union-attr]
            staging = logs / f".pending-{prep.timestamp}-{secrets.token_hex(3)}"
            write_files(staging, prep.files)
            try:
                job_id = sbatch.submit(staging / "job.sbatch", cluster_file=prep.cluster.source,
                                       env=prep.secret_environment())
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            run_dir = logs / f"{job_id}{prep.run_suffix}"
            submitted.append((job_id, staging))
            staging.rename(run_dir)
            submitted[-1] = (job_id, run_dir)
            meta = {**metadata(prep, job_id, "slurm"), "sweep": req.sweep_id, "sweep_values": m.values}
            write_files(run_dir, {"metadata.json": _json(meta)})
            row.update(job_id=job_id, run_dir=str(run_dir))
        write_files(sweep_dir(req), {"sweep.json": sweep_json(req, rows, executor="slurm")})
    except BaseException:
        for job_id, directory in submitted:
            sbatch.cancel(job_id)
            shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(sweep_dir(req), ignore_errors=True)
        raise
    for job_id, run_dir in submitted:
        sbatch.release(job_id)
        print(f"Submitted batch job {job_id}")
        print(f"Logs: {display(run_dir)}/")
    print(f"Sweep {req.sweep_id}: {len(submitted)} jobs, {display(sweep_dir(req))}/sweep.json")
    return 0


def _apply_local(req: Request) -> int:
    import sys
    import time

    from .apply_cmd import _json, run_local_agent
    from .prepare import metadata, write_files

    logs = logs_dir(req.cluster)
    rows = member_rows(req)
    base = int(time.time() * 1000) % 1_000_000_000
    runs = []
    for i, (m, prep, row) in enumerate(zip(req.sweep.members, req.preps, rows)):  # type: ignore[union-attr]
        job_id = str(base + i)
        run_dir = logs / f"{job_id}{prep.run_suffix}"
        meta = {**metadata(prep, job_id, "local"), "sweep": req.sweep_id, "sweep_values": m.values}
        write_files(run_dir, {**prep.files, "metadata.json": _json(meta)})
        row.update(job_id=job_id, run_dir=str(run_dir))
        runs.append((job_id, run_dir, prep))
    write_files(sweep_dir(req), {"sweep.json": sweep_json(req, rows, executor="local")})
    print(f"Sweep {req.sweep_id}: {len(runs)} local jobs, {display(sweep_dir(req))}/sweep.json")
    worst = 0
    for job_id, run_dir, prep in runs:
        print(f"Started local job {job_id}")
        print(f"Logs: {display(run_dir)}/")
        sys.stdout.flush()
        code = run_local_agent(run_dir, job_id, extra_env=prep.secret_environment())
        worst = worst or code
        if code in (130, 143):  # stopped by a signal: the rest of the sweep is not started
            break
    return worst
