"""Shared by dry-run and apply: validate, resolve, plan, and render every generated file."""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

import yaml

from srt_agent import __version__
from srt_agent.atomic import write_texts_atomic
from srt_agent.cluster_config import ClusterConfig, load_cluster_config
from srt_agent.engine_flags import check as check_engine_flags
from srt_agent.errors import ConfigError
from srt_agent.incumbent import is_incumbent
from srt_agent.plan import NodeInfo, Plan, PlanInputs, make_plan
from srt_agent.resolved import ResolvedJob, resolve_job
from srt_agent.rundir import configs_dir, logs_dir, srtctl_root
from srt_agent.secrets import SECRETS_ENV_VAR, redact_text, split_job_secrets
from srt_agent.srun import with_launch_commands
from srt_agent.templating import render
from srt_agent.yaml_source import YamlDocument, load_yaml

WARNING_SECONDS = 300


@dataclass
class Prepared:
    resolved: ResolvedJob
    cluster: ClusterConfig
    job_path: Path
    timestamp: str
    run_suffix: str
    setup_script: str | None
    tags: list[str]
    plan: Plan
    files: dict[str, str] = field(default_factory=dict)  # file name -> content
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # kept out of every file

    def secret_environment(self) -> dict[str, str]:
        """Environment for sbatch / the local agent that carries the secret values."""
        return {SECRETS_ENV_VAR: json.dumps(self.secrets)} if self.secrets else {}

    @property
    def run_dir_placeholder(self) -> str:
        return f"{logs_dir(self.cluster)}/JOBID{self.run_suffix}"

    @property
    def topology(self) -> str:
        return self.run_suffix.split("_", 2)[1] if self.resolved.job.mode == "aggregated" else \
            "_".join(self.run_suffix.split("_")[1:3])


def run_suffix(resolved: ResolvedJob, timestamp: str) -> str:
    j = resolved.job
    if j.mode == "aggregated":
        return f"_{j.resources.agg_workers}A_{timestamp}"
    return f"_{j.resources.prefill_workers}P_{j.resources.decode_workers}D_{timestamp}"


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s[:80] or "job"


def check_setup_script(name: str | None, cluster: ClusterConfig) -> str | None:
    if name is None:
        return None
    p = PurePosixPath(name)
    cdir = configs_dir(cluster)
    if p.is_absolute() or ".." in p.parts or not name.strip():
        raise ConfigError(f"setup script '{name}' must be a file name inside {cdir}", key="--setup-script",
                          hint="put the script in configs/ and pass its name, e.g. --setup-script custom-setup.sh")
    if p.parts and p.parts[0] == "configs":
        p = PurePosixPath(*p.parts[1:])
    if not (cdir / p).is_file():
        raise ConfigError(f"setup script '{p}' not found in {cdir}", key="--setup-script",
                          hint=f"create {cdir / p}, or pass the name of a script that is there")
    return str(p)


def parse_tags(tags: str | None) -> list[str]:
    out = [t.strip() for t in (tags or "").split(",") if t.strip()]
    for t in out:
        if not re.fullmatch(r"[A-Za-z0-9._:+-]{1,64}", t):
            raise ConfigError(f"tag '{t}' may only contain letters, digits and . _ : + -", key="--tags")
    return out


def placeholder_nodes(count: int) -> list[NodeInfo]:
    return [NodeInfo(name=f"node{i}", address=f"node{i}") for i in range(count)]


def load_cluster(cluster_file: str | Path | None = None, local: bool = False) -> ClusterConfig:
    cluster = load_cluster_config(cluster_file)
    if local:
        cluster = cluster.model_copy(update={"executor": "local", "container_runtime": "none"})
    return cluster


def prepare(job_file: str | Path, *, setup_script: str | None = None, tags: str | None = None,
            cluster_file: str | Path | None = None, local: bool = False, doc: YamlDocument | None = None) -> Prepared:
    """doc: the job file already parsed (load_yaml(job_file)), so it is not parsed again."""
    cluster = load_cluster(cluster_file, local)
    doc, conversion = load_job_document(job_file, cluster, doc)
    resolved = resolve_job(doc, cluster)
    return prepare_resolved(resolved, cluster, Path(job_file), Path(job_file).read_text(),
                            setup_script=setup_script, tags=tags, conversion=conversion)


def prepare_resolved(resolved: ResolvedJob, cluster: ClusterConfig, job_file: Path, job_text: str, *,
                     setup_script: str | None = None, tags: str | None = None,
                     timestamp: str | None = None, conversion=None, notice: bool = True) -> Prepared:
    """Everything apply submits for an already resolved job (a sweep member, or a job with --set);
    job_text is the job file as it is copied into the run directory."""
    for warning in check_engine_flags(resolved.job, resolved.container, str(job_file), lambda *_: None)[1]:
        print(f"warning: {job_file}: {warning}", file=sys.stderr)
    script = check_setup_script(setup_script or resolved.job.setup_script, cluster)
    tag_list = parse_tags(tags)
    ts = timestamp or datetime.now().strftime("%Y%m%d_%H%M%S")
    suffix = run_suffix(resolved, ts)
    root = srtctl_root(cluster)
    logs = logs_dir(cluster)
    plan = make_plan(resolved, PlanInputs(
        job_id="0", nodes=placeholder_nodes(resolved.total_nodes), log_dir=f"{logs}/JOBID{suffix}",
        srtctl_root=str(root), host_python=cluster.python or sys.executable, configs_dir=str(configs_dir(cluster)),
        setup_script=script))
    plan = with_launch_commands(plan, executor=cluster.executor, run_dir=f"{logs}/JOBID{suffix}")
    prep = Prepared(resolved=resolved, cluster=cluster, job_path=Path(job_file), timestamp=ts, run_suffix=suffix,
                    setup_script=script, tags=tag_list, plan=plan)
    data = resolved.to_json()
    data["job"], prep.secrets = split_job_secrets(data["job"])
    secret_values = [v for section in prep.secrets.values() for v in section.values()]
    prep.files["job.yaml"] = redacted_job_text(job_text, secret_values)
    prep.files["resolved.json"] = json.dumps(data, indent=2) + "\n"
    prep.files["job.sbatch"] = render_sbatch(prep)
    if conversion is not None:
        prep.files["job.converted.yaml"] = redacted_job_text(conversion.text(), secret_values, parsed=True)
        if notice:
            print(conversion.notice(), file=sys.stderr)
    return prep


def load_job_document(job_file: str | Path, cluster: ClusterConfig | None = None, doc: YamlDocument | None = None):
    """The job file as a YamlDocument (doc: already parsed); an incumbent srt-slurm recipe is converted first.
    Returns (document, Conversion or None)."""
    doc = doc if doc is not None else load_yaml(job_file)
    if not is_incumbent(doc.data):
        return doc, None
    from srt_agent.incumbent.convert import convert_document  # lazy, CLI start-up: only a v1 recipe is converted

    conversion = convert_document(doc, cluster)
    return conversion.document(), conversion


def redacted_job_text(text: str, secret_values: list[str], parsed: bool = False) -> str:
    """The job file as submitted; with secret environment values, the parsed file re-serialised
    with *** in their place (a text search could miss a value written with YAML escapes)."""
    if not secret_values:
        return text
    if parsed:
        return redact_text(text, secret_values)
    data, _ = split_job_secrets(yaml.safe_load(text) or {})
    out = ("# srtctl: secret environment values replaced by ***; comments and layout not kept\n"
           + yaml.safe_dump(data, sort_keys=False))
    return redact_text(out, secret_values)


def render_sbatch(prep: Prepared, fixed_run_dir: str | None = None, *, nodes: int | None = None,
                  job_name: str | None = None) -> str:
    """nodes/job_name: for a sweep's one allocation (mode allocation), sized for its largest member."""
    r = prep.resolved
    cluster = prep.cluster
    logs = logs_dir(cluster)
    nodes = nodes or r.total_nodes
    return render(
        "job.sbatch.j2", job_name=job_name or r.job.name, nodes=nodes, time_limit=r.time_limit, account=r.account,
        partition=r.partition, gpus_per_node=r.gpus_per_node if cluster.use_gpus_per_node_directive else None,
        segment=nodes if cluster.use_segment_sbatch_directive else None,
        output=f"{_output_pattern(fixed_run_dir)}/slurm-%j.out" if fixed_run_dir
        else f"{_output_pattern(str(logs))}/%j{_output_pattern(prep.run_suffix)}/slurm-%j.out",
        warning_seconds=WARNING_SECONDS,
        version=__version__, logs_dir=str(logs), run_suffix=prep.run_suffix,
        srtctl_root=str(srtctl_root(cluster)), python=cluster.python or sys.executable,
        fixed_run_dir=fixed_run_dir, sbatch_directives=list(r.job.slurm.sbatch_directives.items()))


def _output_pattern(directory: str) -> str:
    """A directory inside sbatch's --output pattern: % doubled; a backslash would turn off %j."""
    if "\\" in directory or any(ord(c) < 32 or ord(c) == 127 for c in directory):
        raise ConfigError(f"the run directory {directory!r} cannot be used in #SBATCH --output",
                          key="logs_dir", hint="use a logs directory without backslashes or control characters")
    return directory.replace("%", "%%")


def metadata(prep: Prepared, job_id: str, executor: str) -> dict:
    r = prep.resolved
    return {
        "schema": 1, "job_id": str(job_id), "name": r.job.name, "tags": prep.tags,
        "setup_script": prep.setup_script, "submitted_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "srtctl_version": __version__, "executor": executor, "mode": r.job.mode,
        "topology": prep.run_suffix.rsplit("_", 2)[0].lstrip("_"), "job_file": str(prep.job_path),
        "nodes": r.total_nodes, "gpus": r.total_gpus, "engine": r.job.backend.engine,
        "benchmark": r.job.benchmark.type, "profiling": r.job.profiling.type,
        "cluster_file": r.cluster.source,
    }


def write_files(directory: Path, files: dict[str, str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_texts_atomic(directory, files)
