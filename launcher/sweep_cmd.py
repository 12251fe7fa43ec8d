"""Sweeps and --set/--unset for dry-run and apply: load the job file with its overrides, expand a
`sweep:` into members (srt_agent.sweep), and describe them (sweep.json, the members' table).
dry_run writes a sweep's dry run; sweep_apply and sweep_alloc submit its members.

Every member is prepared (validated, planned, rendered) before anything is written or submitted.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.incumbent import is_incumbent
from srt_agent.incumbent.detect import is_override_file
from srt_agent.resolved import resolve_job
from srt_agent.rundir import logs_dir
from srt_agent.yaml_source import YamlDocument, load_yaml

from .prepare import Prepared, load_cluster, prepare, prepare_resolved, slug

if TYPE_CHECKING:
    from srt_agent.sweep import Sweep


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
    conversion = _converted(doc, local) if sets or unsets or _override_file(doc.data) else None
    if conversion is not None:  # an srt-slurm (v1) recipe: --set and an override file's sweep apply to its conversion
        doc = conversion.document()
    data = doc.data if isinstance(doc.data, dict) else None
    if not sets and not unsets and (data is None or "sweep" not in data):
        return Request(cluster=None, doc=doc,  # type: ignore[arg-type]
                       prep=prepare(args.file, setup_script=args.setup_script, tags=args.tags, local=local,
                                    doc=None if conversion is not None else doc))
    from srt_agent.sweep import (  # lazy, CLI start-up: a plain job imports no sweep machinery
        apply_overrides, check_allocation, expand, redacted_overrides)

    cluster = load_cluster(None, local)
    if data is None:  # let the normal loader report it
        return Request(cluster=cluster, doc=doc, prep=prepare(args.file, setup_script=args.setup_script,
                                                              tags=args.tags, local=local))
    data = apply_overrides(data, sets, unsets)
    overrides = {"set": redacted_overrides(sets), "unset": list(unsets)}  # as written down: no secret values
    ts = datetime.now().strftime("%Y%m%d_%H%M%S")
    job_path = Path(args.file)
    if "sweep" not in data:
        mdoc = YamlDocument(path=doc.path, data=data, lines=doc.lines)
        resolved = resolve_job(mdoc, cluster)
        text = _override_header(overrides) + yaml.safe_dump(data, sort_keys=False)
        return Request(cluster=cluster, doc=doc, overrides=overrides,
                       prep=prepare_resolved(resolved, cluster, job_path, text, setup_script=args.setup_script,
                                             tags=args.tags, timestamp=ts, conversion=conversion))
    sweep = expand(doc, data, cluster)
    if conversion is not None:
        print(conversion.notice(), file=sys.stderr)
    if sweep.mode == "allocation":
        check_allocation(sweep, doc)
    preps = [prepare_resolved(m.resolved, cluster, job_path, _override_header(overrides) + m.text(str(job_path)),
                              setup_script=args.setup_script, tags=args.tags, timestamp=ts,
                              conversion=conversion, notice=False)
             for m in sweep.members]  # type: ignore[arg-type]
    return Request(cluster=cluster, doc=doc, sweep=sweep, preps=preps, timestamp=ts, overrides=overrides,
                   sweep_id=f"{slug(str(data.get('name') or 'sweep'))}_{ts}", name=str(data.get("name") or ""))


def _override_file(data) -> bool:
    return is_incumbent(data) and is_override_file(data)


def _converted(doc: YamlDocument, local: bool):
    if not is_incumbent(doc.data):
        return None
    from srt_agent.incumbent.convert import convert_document  # lazy, CLI start-up: only a v1 recipe is converted

    return convert_document(doc, load_cluster(None, local))


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
    from srt_agent.sweep import short_keys  # lazy, CLI start-up: a plain job imports no sweep machinery

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

    from srt_agent.sweep import short_keys  # lazy, CLI start-up: a plain job imports no sweep machinery

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
    con = Console()
    con.print(table)
    con.print("  " + "; ".join(f"{labels[k]} = {k}" for k in req.sweep.keys), soft_wrap=True)


def sweep_dir(req: Request) -> Path:
    """logs/sweeps/<sweep id>/: where `srtctl status/runs/report` find the sweep's sweep.json."""
    return logs_dir(req.cluster) / "sweeps" / req.sweep_id
