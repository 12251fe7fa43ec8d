"""Load a job file against the cluster file: validate, cross-check and resolve aliases."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aliases import resolve_alias
from .client_plan import check_clients, extra_nodes  # extra_nodes: dedicated load-generator nodes
from .cluster_config import ClusterConfig
from .engine_flags import SGLANG_SECTION
from .engine_flags import check as check_engine_flags
from .engines import job_errors as engine_job_errors
from .errors import ConfigError, ConfigErrors
from .evals.check import check_datasets
from .host_mode import NO_CONTAINER, host_python, python_without_host_mode
from .job_config import JobConfig, Role
from .secrets import is_secret_flag, merge_job_secrets
from .topology import RoleLayout, role_layout, shared_layout
from .validation import validate_document
from .yaml_source import YamlDocument, load_yaml, parse_yaml

TP_KEYS = ("tp-size", "tensor-parallel-size", "tp")
DP_KEYS = ("dp-size", "data-parallel-size", "dp")
EP_KEYS = ("ep-size", "expert-parallel-size", "ep")
HF_PREFIX = "hf:"  # model.path: hf:org/model -> downloaded into srtslurm.yaml hf_cache_dir
# flags the plan sets itself; users must not set them in sglang_config
PLAN_OWNED_FLAGS = ("model-path", "served-model-name", "host", "port", "disaggregation-mode",
                    "disaggregation-bootstrap-port", "dist-init-addr", "nnodes", "node-rank")


@dataclass
class ResolvedJob:
    job: JobConfig
    cluster: ClusterConfig
    job_file: str
    model_path: str
    container: str | None
    account: str | None
    partition: str | None
    time_limit: str | None
    gpus_per_node: int
    layouts: dict[str, RoleLayout] = field(default_factory=dict)
    python: str | None = None  # host processes' Python (model.python / srtslurm.yaml python); None: the caller's

    @property
    def total_nodes(self) -> int:
        return self.worker_nodes + extra_nodes(self.job)

    @property
    def worker_nodes(self) -> int:
        return sum(lay.nodes for lay in self.layouts.values() if lay.shares_nodes_of is None)

    @property
    def total_gpus(self) -> int:
        return self.worker_nodes * self.gpus_per_node

    def served_model_name(self) -> str:
        return self.job.model.served_model_name or Path(self.model_path).name or "model"

    def parallel_sizes(self, role: Role) -> dict[str, int]:
        flags = self.job.role_flags(role)
        gpus = self.layouts[role].gpus_per_worker
        out = {"tp": gpus, "dp": 1, "ep": 1}
        for name, keys in (("tp", TP_KEYS), ("dp", DP_KEYS), ("ep", EP_KEYS)):
            for k in keys:
                if k in flags:
                    out[name] = int(flags[k])
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": 1,
            "job_file": self.job_file,
            "job": self.job.model_dump(mode="json"),
            "cluster": self.cluster.model_dump(mode="json"),
            "resolved": {
                "model_path": self.model_path, "container": self.container, "account": self.account,
                "partition": self.partition, "time_limit": self.time_limit,
                "gpus_per_node": self.gpus_per_node, "mode": self.job.mode,
                "total_nodes": self.total_nodes, "cluster_file": self.cluster.source, "python": self.python,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResolvedJob:
        job = JobConfig.model_validate(data["job"])
        cluster = ClusterConfig.model_validate(data["cluster"])
        r = data["resolved"]
        cluster._source = r.get("cluster_file")
        return cls(job=job, cluster=cluster, job_file=data["job_file"], model_path=r["model_path"],
                   container=r["container"], account=r["account"], partition=r["partition"],
                   time_limit=r["time_limit"], gpus_per_node=r["gpus_per_node"],
                   layouts=_layouts(job, r["gpus_per_node"]), python=r.get("python"))

    @classmethod
    def read(cls, path: str | Path, secrets: dict[str, dict[str, str]] | None = None,
             *, need_secrets: bool = True) -> ResolvedJob:
        """Read resolved.json, putting back secret environment values (kept out of the file).

        need_secrets=False: for the submit side, which only renders the sbatch script."""
        data = json.loads(Path(path).read_text())
        missing = merge_job_secrets(data["job"], secrets or {})
        if missing and need_secrets:
            raise ConfigError(f"secret value(s) not available to the agent: {', '.join(missing)}",
                              file=str(path), hint="resume from a shell where the original job file still exists")
        return cls.from_json(data)


def _layouts(job: JobConfig, gpus_per_node: int) -> dict[str, RoleLayout]:
    layouts: dict[str, RoleLayout] = {}
    for role in job.roles:
        layouts[role] = _role_layout(job, role, gpus_per_node, layouts)
    return layouts


def _role_layout(job: JobConfig, role: Role, gpus_per_node: int, done: dict[str, RoleLayout]) -> RoleLayout:
    nodes, workers = job.role_counts(role)
    gpw = job.role_gpus_per_worker(role)
    if role == "decode" and nodes == 0:
        if "prefill" not in done:
            raise ValueError("decode_nodes: 0 shares the prefill nodes, whose layout is not valid")
        return shared_layout(done["prefill"], "prefill", workers, gpus_per_node, gpw)
    return role_layout(nodes, workers, gpus_per_node, gpw)


def _flag_line(doc: YamlDocument, loc: tuple, flag: str) -> int | None:
    """Line of an sglang_config flag however the user spelled it (kebab, snake, leading --)."""
    for spelling in (flag, flag.replace("-", "_"), f"--{flag}"):
        if loc + (spelling,) in doc.lines:
            return doc.lines[loc + (spelling,)]
    return doc.line_of(loc)


def _check_roles(job: JobConfig, doc: YamlDocument, gpus_per_node: int) -> tuple[dict[str, RoleLayout], list[ConfigError]]:
    errors: list[ConfigError] = []
    layouts: dict[str, RoleLayout] = {}
    for role in job.roles:
        nodes, workers = job.role_counts(role)
        key_nodes = f"resources.{'agg' if role == 'agg' else role}_nodes"
        try:
            layouts[role] = _role_layout(job, role, gpus_per_node, layouts)
        except ValueError as exc:
            errors.append(ConfigError(str(exc), file=doc.path, line=doc.line_of(("resources", key_nodes.split(".")[1])),
                                      key=key_nodes, value=nodes,
                                      hint="make nodes a multiple of workers, or workers a multiple of nodes"))
            continue
        section = SGLANG_SECTION[role]
        flags = job.role_flags(role)
        lay = layouts[role]
        loc = ("backend", "sglang_config", section)
        for flag in flags:
            if is_secret_flag(flag):
                errors.append(ConfigError(
                    f"'{flag}' looks like a secret; a command-line value shows in ps, plan.json and logs",
                    file=doc.path, line=doc.line_of(loc + (flag,)), key=".".join(loc + (flag,)),
                    hint="remove it (secrets belong in *_environment, which srtctl keeps out of every file)"))
        for owned in PLAN_OWNED_FLAGS:
            if owned in flags:
                errors.append(ConfigError(
                    f"'{owned}' is set by srtctl from the plan", file=doc.path,
                    line=_flag_line(doc, loc, owned),
                    key=".".join(loc + (owned,)), hint="remove it; use model.path / resources instead"))
        sizes: dict[str, int] = {}
        for name, keys in (("tp", TP_KEYS), ("dp", DP_KEYS), ("ep", EP_KEYS)):
            given = [k for k in keys if k in flags]
            if len(given) > 1:
                errors.append(ConfigError(f"both {given[0]} and {given[1]} are set", file=doc.path,
                                          line=doc.line_of(loc), key=".".join(loc), hint=f"keep only {given[0]}"))
            for k in given:
                v = flags[k]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    errors.append(ConfigError(f"must be a positive integer (got {v!r})", file=doc.path,
                                              line=_flag_line(doc, loc, k), key=".".join(loc + (k,))))
                else:
                    sizes[name] = v
        tp = sizes.get("tp")
        gpus = lay.gpus_per_worker
        how = (f"{lay.nodes} {role} node(s) x {gpus_per_node} GPUs / {lay.workers} worker(s)")
        if tp is not None and tp != gpus:
            k = next(k for k in TP_KEYS if k in flags)
            errors.append(ConfigError(
                f"tensor parallel size {tp} does not match the {gpus} GPUs each {role} worker gets ({how})",
                file=doc.path, line=_flag_line(doc, loc, k), key=".".join(loc + (k,)), value=tp,
                hint=f"set {k}: {gpus}, or change resources so each worker gets {tp} GPUs"))
        world = tp or gpus
        for name in ("dp", "ep"):
            v = sizes.get(name)
            if v is not None and (v > world or world % v):
                k = next(k for k in (DP_KEYS if name == "dp" else EP_KEYS) if k in flags)
                errors.append(ConfigError(
                    f"{k} {v} must divide the worker's {world} GPUs", file=doc.path,
                    line=_flag_line(doc, loc, k), key=".".join(loc + (k,)), value=v,
                    hint=f"use a divisor of {world} (e.g. {world})"))
    for role_section in ("prefill", "decode", "aggregated"):
        used = bool(getattr(job.backend.sglang_config, role_section))
        wanted = ("agg" if role_section == "aggregated" else role_section) in job.roles
        if used and not wanted:
            errors.append(ConfigError(
                f"sglang_config.{role_section} is set but this is a{'n' if job.mode == 'aggregated' else ''} "
                f"{job.mode} job", file=doc.path, line=doc.line_of(("backend", "sglang_config", role_section)),
                key=f"backend.sglang_config.{role_section}",
                hint="aggregated and disaggregated sections cannot be mixed; remove it"))
    errors += _kv_events_roles(job, doc)
    return layouts, errors


def _kv_events_roles(job: JobConfig, doc: YamlDocument) -> list[ConfigError]:
    """kv_events_config must reach a worker: `true` means prefill and decode (srt-slurm's reading)."""
    kv = job.backend.kv_events_config
    if kv is True and job.mode == "aggregated":
        return [ConfigError(
            "kv_events_config: true turns KV events on for prefill and decode workers only, and this job is "
            "aggregated: no worker would publish them", file=doc.path,
            line=doc.line_of(("backend", "kv_events_config")), key="backend.kv_events_config",
            hint="write kv_events_config: {aggregated: true}")]
    if not isinstance(kv, dict):
        return []
    wanted = {"aggregated"} if job.mode == "aggregated" else {"prefill", "decode"}
    return [ConfigError(
        f"kv_events_config.{section} is set but this is a{'n' if job.mode == 'aggregated' else ''} {job.mode} job",
        file=doc.path, line=doc.line_of(("backend", "kv_events_config", section)),
        key=f"backend.kv_events_config.{section}",
        hint=f"use {' / '.join(sorted(wanted))}, or remove it")
        for section, cfg in kv.items() if cfg and section not in wanted]


def resolve_job(doc: YamlDocument, cluster: ClusterConfig) -> ResolvedJob:
    job = validate_document(JobConfig, doc)
    gpn = job.resources.gpus_per_node or cluster.gpus_per_node
    errors: list[ConfigError] = []
    layouts, role_errors = _check_roles(job, doc, gpn)
    errors += role_errors
    if job.profiling.type != "none" and job.benchmark.type != "manual":
        errors.append(ConfigError(
            f"profiling ({job.profiling.type}) and benchmarking ({job.benchmark.type}) are mutually exclusive",
            file=doc.path, line=doc.line_of(("benchmark", "type")) or doc.line_of(("profiling",)),
            key="benchmark.type", value=job.benchmark.type, hint='set benchmark.type: "manual" when profiling'))
    errors += engine_job_errors(job, doc)
    errors += check_datasets(job, doc)
    if job.benchmark.type == "trace-replay":
        from .loadgen.trace_file import dry_run_errors as trace_errors  # lazy, CLI start-up: a trace job only

        errors += trace_errors(job.benchmark, doc)
    errors += check_clients(job, doc, sum(lay.nodes for lay in layouts.values() if lay.shares_nodes_of is None))
    model_path = job.model.path
    container = job.model.container
    if job.model.path.startswith(HF_PREFIX):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?", job.model.path[len(HF_PREFIX):]):
            errors.append(ConfigError("a Hugging Face model id must look like hf:org/model", file=doc.path,
                                      line=doc.line_of(("model", "path")), key="model.path", value=job.model.path))
        elif not cluster.hf_cache_dir:
            errors.append(ConfigError("hf: model ids are downloaded into a shared cache, and the cluster file sets none",
                                      file=doc.path, line=doc.line_of(("model", "path")), key="model.path",
                                      value=job.model.path,
                                      hint=f"set hf_cache_dir: /shared/dir in {cluster.source or 'srtslurm.yaml'}, "
                                           "or use a model alias from model_paths"))
    else:
        try:
            model_path = resolve_alias(job.model.path, cluster.model_paths, kind="model_paths", key="model.path",
                                       file=doc.path, line=doc.line_of(("model", "path")),
                                       cluster_file=cluster.source)
        except ConfigError as exc:
            errors.append(exc)
    python = None
    if container == NO_CONTAINER or cluster.container_runtime == "none":  # host processes
        python, host_errors = host_python(job, cluster, file=doc.path, line_of=doc.line_of)
        errors += host_errors
        container = None if container == NO_CONTAINER else container
    elif job.model.python is not None:
        errors += python_without_host_mode(job, file=doc.path, line_of=doc.line_of)
    if container is not None:
        try:
            container = resolve_alias(container, cluster.containers, kind="containers", key="model.container",
                                      file=doc.path, line=doc.line_of(("model", "container")),
                                      cluster_file=cluster.source, registry=True)
        except ConfigError as exc:
            errors.append(exc)
    elif cluster.container_runtime == "pyxis" and cluster.executor == "slurm" and job.model.container is None:
        errors.append(ConfigError("no container given", file=doc.path, line=doc.line_of(("model",)),
                                  key="model.container",
                                  hint="set model.container to an alias from srtslurm.yaml `containers`, "
                                       "model.container: none to run this job on the host, or container_runtime: none "
                                       "in srtslurm.yaml for every job"))
    if not errors:
        flag_errors, _warnings = check_engine_flags(
            job, container, doc.path, lambda section, key: _flag_line(doc, ("backend", "sglang_config", section), key))
        errors += flag_errors
    if errors:
        raise ConfigErrors(errors)
    return ResolvedJob(
        job=job, cluster=cluster, job_file=str(Path(doc.path).resolve()), model_path=model_path,
        container=container if cluster.container_runtime == "pyxis" else None,
        account=job.slurm.account or cluster.default_account,
        partition=job.slurm.partition or cluster.default_partition,
        time_limit=job.slurm.time_limit or cluster.default_time_limit,
        gpus_per_node=gpn, layouts=layouts, python=python,
    )


def load_job(path: str | Path, cluster: ClusterConfig) -> ResolvedJob:
    return resolve_job(load_yaml(path), cluster)


def load_job_text(text: str, cluster: ClusterConfig, path: str = "<job>") -> ResolvedJob:
    return resolve_job(parse_yaml(text, path), cluster)
