"""Convert an incumbent srt-slurm (v1) recipe into this project's job file, key by key (mapping.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError, ConfigErrors
from ..job_config import parse_concurrencies
from ..yaml_source import Loc, YamlDocument
from .mapping import MAPPING, Entry, lookup
from .extras import HANDLERS as EXTRA_HANDLERS, refuse_profiled_custom
from .layout import fit_gpus_to_tp
from .overrides import convert_override_file, is_override_file, needs_base
from .traces import HANDLERS as TRACE_HANDLERS, TRACE_TYPES, trace_types

INCUMBENT_DYNAMO_DEFAULT = "0.8.0"
INCUMBENT_HEALTH_DEFAULT = (180, 10)  # max_attempts, interval_seconds
_ORDER = ("name", "model", "extra_mount", "resources", "slurm", "setup_script", "backend", "benchmark",
          "profiling", "health")
ACCURACY_TYPES = ("gsm8k", "mmlu", "gpqa", "longbenchv2", "aime", "aime25", "lm-eval")
# a converted eval's dataset, under srtslurm.yaml `eval_datasets_dir` (docs/migrating.md)
EVAL_DATASETS = {"gsm8k": "gsm8k/test.jsonl", "mmlu": "mmlu", "gpqa": "gpqa/gpqa_diamond.csv"}


@dataclass
class Conversion:
    source: str
    data: dict[str, Any]
    lines: dict[Loc, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    brief: dict[str, list[int | None]] = field(default_factory=dict)
    members: str = ""  # an override file: which sweep member is which variant

    def document(self) -> YamlDocument:
        """The converted job as a YamlDocument whose lines point into the recipe."""
        return YamlDocument(path=self.source, data=self.data, lines=dict(self.lines))

    def text(self) -> str:
        head = (f"# Converted by srtctl from the srt-slurm (v1) recipe {self.source}\n"
                "# (see docs/migrating.md for the mapping, key by key)\n")
        if self.notes:
            head += "".join(f"# note: {n}\n" for n in self.notes)
        return head + yaml.safe_dump(self.data, sort_keys=False, default_flow_style=False, width=120)

    def notice(self) -> str:
        text = f"note: {self.source} is an srt-slurm (v1) recipe, converted to srtctl's format (job.converted.yaml)"
        if self.brief:
            keys = []
            for key, lines in self.brief.items():
                nums = [str(n) for n in lines if n]
                keys.append(f"{key} (line{'s' if len(nums) > 1 else ''} {', '.join(nums)})" if nums else key)
            text += "; approximated or dropped (details in its comments, docs/migrating.md): " + ", ".join(keys)
        return text + (f"; {self.members}" if self.members else "")


class _Converter:
    def __init__(self, doc: YamlDocument, eval_datasets_dir: str | None = None) -> None:
        self.doc = doc
        self.eval_datasets_dir = eval_datasets_dir
        self.out: dict[str, Any] = {}
        self.lines: dict[Loc, int] = {}
        self.notes: list[str] = []
        self.errors: list[ConfigError] = []
        self.extra: dict[str, Any] = {}  # values combined after the walk
        self.brief: dict[str, list[int | None]] = {}  # noted key (mapping source) -> recipe lines

    # ---- helpers --------------------------------------------------------------------------
    def line(self, loc: Loc) -> int | None:
        return self.doc.line_of(loc)

    def put(self, target: tuple[str, ...], value: Any, src: Loc) -> None:
        node = self.out
        for i, part in enumerate(target[:-1]):
            node = node.setdefault(part, {})
            self.lines.setdefault(target[: i + 1], self.line(src[: i + 1]) or self.line(src) or 0)
        node[target[-1]] = value
        line = self.line(src)
        if line:
            self.lines[target] = line

    def note(self, src: Loc, text: str) -> None:
        line = self.line(src)
        self.notes.append(f"{'.'.join(map(str, src))}{f' (line {line})' if line else ''}: {text}")
        entry = lookup(tuple(map(str, src)))
        self.brief.setdefault(entry.source if entry else ".".join(map(str, src)), []).append(line)

    def refuse(self, src: Loc, message: str, hint: str | None = None) -> None:
        self.errors.append(ConfigError(message, file=self.doc.path, line=self.line(src),
                                       key=".".join(map(str, src)), hint=hint))

    def benchmark_refused(self) -> bool:
        bench = self.doc.data.get("benchmark")
        kind = bench.get("type") if isinstance(bench, dict) else None
        return kind is not None and kind not in ("sa-bench", "manual", "custom", *EVAL_DATASETS, *TRACE_TYPES)

    # ---- the walk -------------------------------------------------------------------------
    def run(self) -> Conversion:
        data = self.doc.data
        for key, value in data.items():
            self.walk((str(key),), value)
        if not self.errors:
            self.finish()
        if self.errors:
            raise ConfigErrors(self.errors)
        order = {k: i for i, k in enumerate(_ORDER)}
        data = dict(sorted(self.out.items(), key=lambda kv: order.get(kv[0], len(order))))
        return Conversion(source=self.doc.path, data=data, lines=self.lines, notes=self.notes, brief=self.brief)

    def walk(self, path: tuple[str, ...], value: Any) -> None:
        if path[:2] == ("backend", "sglang_config") and len(path) == 4:
            path = (*path[:3], str(path[3]).replace("_", "-").lstrip("-"))
        entry = lookup(path)
        if entry is None:
            if isinstance(value, dict) and _has_children(path):
                for k, v in value.items():
                    self.walk((*path, str(k)), v)
                return
            if value is None and _has_children(path):
                return
            if path[0] == "benchmark" and self.benchmark_refused():
                return  # an option of a benchmark type srtctl refuses: that refusal names the feature
            self.refuse(path, f"'{'.'.join(path)}' is not a key srtctl knows in srt-slurm's v1 recipe format",
                        hint="remove it, or see docs/migrating.md for the keys srtctl converts")
            return
        handler = _HANDLERS.get(entry.source)
        if handler is not None:
            handler(self, entry, path, value)
        elif entry.how in ("same", "moved"):
            self.put(_target(entry, path), value, path)
        elif entry.how == "refused":
            self.refuse(path, f"'{'.'.join(path)}' has no equivalent in srtctl: {entry.note}",
                        hint="remove it from the recipe (see docs/migrating.md)")
        elif entry.how in ("approximated", "dropped"):
            self.note(path, f"{entry.how}: {entry.note}")
        else:  # pragma: no cover - every converted entry has a handler
            raise AssertionError(entry.source)

    # ---- after the walk: values that combine several keys -----------------------------------
    def finish(self) -> None:
        out, ex = self.out, self.extra
        backend = out.setdefault("backend", {})
        # served model name: the first of prefill, aggregated, decode (the incumbent's order)
        names = ex.get("served", {})
        for section in ("prefill", "aggregated", "decode"):
            if section in names and not out.get("model", {}).get("served_model_name"):
                value, src = names[section]
                self.put(("model", "served_model_name"), str(value), src)
        # Dynamo: the incumbent installs 0.8.0 unless told otherwise
        dyn = ex.get("dynamo", {})
        if backend.get("engine", "sglang") == "sglang" and dyn.get("install", True) and \
                "dynamo_git_ref" not in backend and "dynamo_version" not in backend:
            backend["dynamo_version"] = INCUMBENT_DYNAMO_DEFAULT
        # the environment for everything, then the request plane
        common = dict(ex.get("environment", {}))
        if "request_plane" in dyn:
            common["DYN_REQUEST_PLANE"] = str(dyn["request_plane"])
        if common:
            roles = ["aggregated"] if "agg_workers" in out.get("resources", {}) else ["prefill", "decode"]
            for role in roles:
                key = f"{role}_environment"
                backend[key] = {**common, **backend.get(key, {})}
            backend["frontend_environment"] = {**common, **backend.get("frontend_environment", {})}
        # health check: attempts x interval -> the worker deadline
        if "health" in ex:
            attempts, interval = INCUMBENT_HEALTH_DEFAULT
            attempts = ex["health"].get("max_attempts", attempts)
            interval = ex["health"].get("interval_seconds", interval)
            try:
                seconds = float(attempts) * float(interval)
            except (TypeError, ValueError):
                self.refuse(("health_check",), "health_check max_attempts and interval_seconds must be numbers")
                return
            if seconds > 0:
                out.setdefault("health", {})["worker_timeout_s"] = seconds
                self.lines.setdefault(("health",), self.line(("health_check",)) or 0)
        self.eval_dataset()
        fit_gpus_to_tp(self)
        # aggregated jobs: the incumbent counts one node when agg_nodes is missing
        res = out.get("resources", {})
        if "agg_workers" in res and "agg_nodes" not in res:
            res["agg_nodes"] = 1
        # profiling runs its own load in srtctl: take it from the sa-bench section
        prof, bench = out.get("profiling", {}), out.get("benchmark", {})
        if prof.get("type", "none") != "none" and bench.get("type") == "custom":
            refuse_profiled_custom(self)
        elif prof.get("type", "none") != "none" and bench.get("type", "manual") != "manual":
            for k in ("isl", "osl"):
                if k in bench:
                    prof[k] = bench[k]
            conc = bench.get("concurrencies")
            if conc:
                try:
                    prof["concurrency"] = parse_concurrencies(conc)[0]
                except ValueError:
                    pass
            out["benchmark"] = {"type": "manual"}
            self.note(("profiling", "type"), "approximated: srtctl profiles with its own load (the benchmark's "
                      "isl/osl and first concurrency) instead of running sa-bench alongside")

    def eval_dataset(self) -> None:
        """An accuracy benchmark reads its dataset from srtslurm.yaml `eval_datasets_dir` (the
        incumbent's harness downloads it; compute nodes here have no internet)."""
        bench = self.out.get("benchmark", {})
        task = bench.get("type")
        if task not in EVAL_DATASETS:
            return
        if not self.eval_datasets_dir:
            self.refuse(("benchmark", "type"), f"accuracy benchmark {task!r} needs a local dataset: srt-slurm's "
                        "harness downloads it, srtctl reads it from srtslurm.yaml `eval_datasets_dir`, which is not set",
                        hint=f"add `eval_datasets_dir: /shared/evals` to srtslurm.yaml and put the dataset at "
                             f"/shared/evals/{EVAL_DATASETS[task]} (layout and sources: docs/migrating.md, docs/evals.md)")
            return
        self.put(("benchmark", "dataset_path"), f"{self.eval_datasets_dir.rstrip('/')}/{EVAL_DATASETS[task]}",
                 ("benchmark", "type"))


def _has_children(path: tuple[str, ...]) -> bool:
    for e in MAPPING:
        parts = e.source.split(".")
        if len(parts) > len(path) and all(w in ("*", g) or (w.endswith("*") and g.startswith(w[:-1]))
                                          for w, g in zip(parts, path)):
            return True
    return False


def _target(entry: Entry, path: tuple[str, ...]) -> tuple[str, ...]:
    parts = entry.target.split(".")
    if parts[-1] == "*":
        return (*parts[:-1], path[-1])
    return tuple(parts)


# ---- handlers of converted / conditional entries ---------------------------------------------

def _backend_type(c: _Converter, e: Entry, path, value) -> None:
    engines = {"sglang": "sglang", "mocker": "dynamo-mocker"}
    if value not in engines:
        c.refuse(path, f"backend type {value!r} has no equivalent in srtctl (it runs SGLang)",
                 hint="srtctl converts backend.type sglang and mocker; keep this recipe on its original tool")
        return
    c.put(("backend", "engine"), engines[value], path)


def _backend_gpu_type(c: _Converter, e: Entry, path, value) -> None:
    c.extra.setdefault("gpu_type", value)
    if "gpu_type" not in (c.doc.data.get("resources") or {}):
        c.put(("resources", "gpu_type"), value, path)


def _flag(kind: str):
    def handle(c: _Converter, e: Entry, path, value) -> None:
        section = path[2]
        if kind == "served":
            c.extra.setdefault("served", {})[section] = (value, path)
        elif kind == "mode":
            want = {"prefill": "prefill", "decode": "decode"}.get(section)
            if value != want:
                c.refuse(path, f"disaggregation-mode {value!r} in sglang_config.{section}",
                         hint=f"srtctl passes the role itself; remove it (or use {want!r})" if want else
                         "aggregated workers have no disaggregation mode; remove it")
        else:
            c.note(path, f"{e.how}: {e.note}")
    return handle


def _dynamo(key: str):
    def handle(c: _Converter, e: Entry, path, value) -> None:
        dyn = c.extra.setdefault("dynamo", {})
        if key == "version":
            if value is not None:
                c.put(("backend", "dynamo_version"), str(value), path)
        elif key == "hash":
            if value is not None:
                c.put(("backend", "dynamo_git_ref"), str(value), path)
        elif key == "top_of_tree":
            if value:
                c.put(("backend", "dynamo_git_ref"), "main", path)
                c.note(path, f"approximated: {e.note}")
        elif key == "install":
            dyn["install"] = bool(value)
            c.put(("backend", "dynamo_install"), bool(value), path)
        elif key == "request_plane":
            dyn["request_plane"] = value
    return handle


def _health(key: str):
    def handle(c: _Converter, e: Entry, path, value) -> None:
        c.extra.setdefault("health", {})[key] = value
    return handle


def _environment(c: _Converter, e: Entry, path, value) -> None:
    c.extra.setdefault("environment", {})[path[-1]] = "" if value is None else (
        str(value).lower() if isinstance(value, bool) else str(value))


def _container_mount(c: _Converter, e: Entry, path, value) -> None:
    host, target = path[-1], str(value)
    if "{" in host or "{" in target:
        c.refuse(path, "templated container mount paths have no equivalent in srtctl",
                 hint="write the absolute paths, e.g. /data/x: /x")
        return
    mounts = c.out.setdefault("extra_mount", [])
    mounts.append(f"{host}:{target}")
    c.lines.setdefault(("extra_mount",), c.line(path) or 0)


def _extra_mount(c: _Converter, e: Entry, path, value) -> None:
    mounts = c.out.setdefault("extra_mount", [])
    mounts.extend(str(m) for m in (value or []))
    c.lines.setdefault(("extra_mount",), c.line(path) or 0)


def _empty_ok(c: _Converter, e: Entry, path, value) -> None:
    if value:
        c.refuse(path, f"'{'.'.join(path)}' has no equivalent in srtctl: {e.note}",
                 hint="remove it from the recipe (see docs/migrating.md)")


def _benchmark_type(c: _Converter, e: Entry, path, value) -> None:
    if value in ("sa-bench", "manual", "custom", *EVAL_DATASETS):
        c.put(("benchmark", "type"), value, path)
    elif value in ACCURACY_TYPES:
        c.refuse(path, f"accuracy benchmark {value!r} is not among srtctl's evals (gsm8k, mmlu, gpqa)",
                 hint="use one of gsm8k, mmlu, gpqa, or benchmark type manual and your own eval client "
                      "against the endpoint")
    else:
        c.refuse(path, f"benchmark type {value!r} has no equivalent in srtctl",
                 hint="srtctl runs sa-bench style sweeps (sa-bench), accuracy evals (gsm8k, mmlu, gpqa) "
                      "or serves until the job ends (manual)")


def _sbatch(c: _Converter, e: Entry, path, value) -> None:
    c.put(("slurm", "sbatch_directives", path[-1]), None if value is None else str(value), path)


_HANDLERS: dict[str, Any] = {
    "backend.type": _backend_type,
    "backend.gpu_type": _backend_gpu_type,
    "backend.sglang_config.*.served-model-name": _flag("served"),
    "backend.sglang_config.*.disaggregation-mode": _flag("mode"),
    "dynamo.version": _dynamo("version"),
    "dynamo.hash": _dynamo("hash"),
    "dynamo.top_of_tree": _dynamo("top_of_tree"),
    "dynamo.install": _dynamo("install"),
    "dynamo.request_plane": _dynamo("request_plane"),
    "health_check.max_attempts": _health("max_attempts"),
    "health_check.interval_seconds": _health("interval_seconds"),
    "environment.*": _environment,
    "container_mounts.*": _container_mount,
    "extra_mount": _extra_mount,
    "infra.etcd_nats_dedicated_node": _empty_ok,
    "benchmark.type": trace_types(_benchmark_type),
    "base": needs_base,
    "override_*": needs_base,
    "zip_override_*": needs_base,
    "sbatch_directives.*": _sbatch,
    **EXTRA_HANDLERS, **TRACE_HANDLERS,
}


def convert_document(doc: YamlDocument, cluster=None) -> Conversion:
    """The recipe in `doc` as a job file of this project; ConfigErrors naming every refused key.
    `cluster` (a ClusterConfig) gives accuracy benchmarks their dataset (`eval_datasets_dir`)."""
    if not isinstance(doc.data, dict):
        raise ConfigError("the file must contain a mapping of keys at the top level", file=doc.path, line=1)
    datasets = getattr(cluster, "eval_datasets_dir", None)
    if is_override_file(doc.data):
        return convert_override_file(doc, lambda one: _Converter(one, datasets).run())
    return _Converter(doc, datasets).run()

