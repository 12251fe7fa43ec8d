"""Key-by-key mapping of the incumbent srt-slurm's v1 recipe format onto this project's job file.

The converter (`convert.py`) is driven by this table, and docs/migrating.md's table is generated
from it (`python -m srt_agent.docgen` writes both references; tests check they agree).

Each entry: incumbent key (dotted; `*` = any name) -> srtctl key, and how:
  same          copied as is
  moved         copied to another key
  converted     a different value with the same meaning (the note says how)
  approximated  the closest srtctl behaviour; listed in the conversion notice
  dropped       no effect on the run; listed in the conversion notice
  refused       no equivalent: conversion stops with an error naming the key and line
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .detect import INCUMBENT_KEYS, INCUMBENT_PREFIXES, INCUMBENT_SECTIONS  # noqa: F401 (the table's readers)

MIGRATING_DOC = Path(__file__).resolve().parent.parent.parent / "docs" / "migrating.md"
BEGIN = "<!-- BEGIN GENERATED: mapping (python -m srt_agent.docgen) -->"
END = "<!-- END GENERATED: mapping -->"


@dataclass(frozen=True)
class Entry:
    source: str
    target: str
    how: str
    note: str = ""


MAPPING: tuple[Entry, ...] = (
    Entry("name", "name", "same"),
    Entry("model.path", "model.path", "same", "alias, absolute path, or `hf:org/model` (needs `hf_cache_dir` in srtslurm.yaml); `$NAME` / `${NAME}` (srt-slurm reads it from the environment when it renders the recipe): expanded from the environment srtctl runs in, refused when unset"),
    Entry("model.container", "model.container", "converted", "alias, absolute .sqsh path, or a registry reference pyxis imports (`lmsysorg/sglang:v0.5.8`), as is; `direct-host` -> `none`: no container, every srun step runs on the node, the workers with `model.python` (taken from `$SRTCTL_PYTHON` when it is set where srtctl converts) or srtslurm.yaml `python`"),
    Entry("model.precision", "model.precision", "same"),
    Entry("model.name", "(dropped)", "dropped", "descriptive (the model's Hugging Face id); the served name is model.served_model_name"),
    Entry("model.container_image", "model.container", "converted", "the pullable registry reference of the image (srt-slurm's recipes: \"pullable Docker URI\"), next to model.container, the image the job runs: descriptive, srtctl runs model.container (to run from the registry, put the reference there: pyxis imports it); alone, it becomes model.container"),
    Entry("resources.gpu_type", "resources.gpu_type", "same"),
    Entry("resources.gpus_per_node", "resources.gpus_per_node", "same"),
    Entry("resources.prefill_nodes", "resources.prefill_nodes", "same"),
    Entry("resources.decode_nodes", "resources.decode_nodes", "same", "0: decode workers share the prefill nodes' free GPUs"),
    Entry("resources.prefill_workers", "resources.prefill_workers", "same"),
    Entry("resources.decode_workers", "resources.decode_workers", "same"),
    Entry("resources.agg_nodes", "resources.agg_nodes", "same", "missing with agg_workers set: 1, as the incumbent counts it"),
    Entry("resources.agg_workers", "resources.agg_workers", "same"),
    Entry("resources.gpus_per_prefill", "resources.gpus_per_prefill", "same"),
    Entry("resources.gpus_per_decode", "resources.gpus_per_decode", "same"),
    Entry("resources.gpus_per_agg", "resources.gpus_per_agg", "same"),
    Entry("slurm.account", "slurm.account", "same"),
    Entry("slurm.partition", "slurm.partition", "same"),
    Entry("slurm.time_limit", "slurm.time_limit", "same"),
    Entry("sbatch_directives.*", "slurm.sbatch_directives.*", "moved", "quoted on their `#SBATCH` line; options srtctl sets itself are refused"),
    Entry("backend.type", "backend.engine", "converted", "`sglang` -> `sglang`, `mocker` -> `dynamo-mocker`; trtllm and vllm are refused"),
    Entry("backend.engine_type", "backend.mocker.engine_type", "moved"),
    Entry("backend.speedup_ratio", "backend.mocker.speedup_ratio", "moved"),
    Entry("backend.mocker_config.prefill.*", "backend.mocker.prefill.*", "moved", "flags of `python -m dynamo.mocker`"),
    Entry("backend.mocker_config.decode.*", "backend.mocker.decode.*", "moved"),
    Entry("backend.mocker_config.aggregated.*", "backend.mocker.aggregated.*", "moved"),
    Entry("backend.gpu_type", "resources.gpu_type", "moved", "unless resources.gpu_type is set"),
    Entry("backend.prefill_environment.*", "backend.prefill_environment.*", "same"),
    Entry("backend.decode_environment.*", "backend.decode_environment.*", "same"),
    Entry("backend.aggregated_environment.*", "backend.aggregated_environment.*", "same"),
    Entry("backend.sglang_config.prefill.*", "backend.sglang_config.prefill.*", "same", "every engine flag is passed on, except those in the rows below"),
    Entry("backend.sglang_config.decode.*", "backend.sglang_config.decode.*", "same"),
    Entry("backend.sglang_config.aggregated.*", "backend.sglang_config.aggregated.*", "same"),
    Entry("backend.sglang_config.*.served-model-name", "model.served_model_name", "moved", "the first of prefill, aggregated, decode, as the incumbent picks it"),
    Entry("backend.sglang_config.*.disaggregation-mode", "(set by srtctl)", "converted", "srtctl passes the worker's role; a value other than the section's role is refused"),
    Entry("backend.sglang_config.*.disaggregation-bootstrap-port", "(set by srtctl)", "approximated", "srtctl gives each prefill worker its own per-job port"),
    Entry("backend.sglang_config.*.model-path", "model.path", "approximated", "the model comes from model.path"),
    Entry("backend.sglang_config.*.host", "(set by srtctl)", "approximated", "the node's own address"),
    Entry("backend.sglang_config.*.port", "(set by srtctl)", "approximated", "a per-job port"),
    Entry("backend.sglang_config.*.nccl-port", "(dropped)", "approximated", "SGLang picks it"),
    Entry("backend.sglang_config.*.dist-init-addr", "(set by srtctl)", "approximated", "srtctl passes the worker leader's address"),
    Entry("backend.sglang_config.*.nnodes", "(set by srtctl)", "approximated", "from resources"),
    Entry("backend.sglang_config.*.node-rank", "(set by srtctl)", "approximated", "from resources"),
    Entry("backend.kv_events_config", "backend.kv_events_config", "converted", "as is: true (prefill and decode) or per role true / settings; srtctl passes `--kv-events-config` with a per-job port on each worker node (one per data-parallel rank)"),
    Entry("backend.mooncake_kv_store", "", "refused", "srtctl does not run mooncake_master"),
    Entry("frontend.type", "backend.use_sglang_router", "converted", "`dynamo` -> false (nginx + Dynamo frontends), `sglang`/`sglangrouter` -> true; others refused, among them `sgl-router` (SGLang's experimental Rust router, which srt-slurm builds from `frontend.source` with cargo: a different program from srtctl's sglang_router)"),
    Entry("frontend.source", "", "refused", "the experimental sgl-router's source checkout, which srt-slurm builds with `cargo build --release`; srtctl builds no router"),
    Entry("frontend.binary", "", "refused", "a prebuilt experimental sgl-router executable; srtctl's router is the container's sglang_router package"),
    Entry("frontend.enable_multiple_frontends", "backend.enable_multiple_frontends", "moved"),
    Entry("frontend.num_additional_frontends", "backend.num_additional_frontends", "moved"),
    Entry("frontend.nginx_container", "(dropped)", "approximated", "srtctl runs nginx from the binary `make setup` installs, on the head node"),
    Entry("frontend.nginx_session_affinity", "backend.nginx_session_affinity_header", "converted", "true: nginx hashes the header `nginx_session_affinity_header` (default `X-Dynamo-Session-ID`) consistently to one Dynamo frontend; requests without it are spread"),
    Entry("frontend.nginx_session_affinity_header", "backend.nginx_session_affinity_header", "converted", "used when nginx_session_affinity is true"),
    Entry("frontend.args.*", "backend.frontend_args.*", "moved", "flags of every frontend or of the router"),
    Entry("frontend.env.*", "backend.frontend_environment.*", "moved", "a value holding srt-slurm's `{artifact_dir}` placeholder is passed as written, with a note (srtctl does not expand it)"),
    Entry("dynamo.version", "backend.dynamo_version", "moved", "absent: the incumbent's default 0.8.0"),
    Entry("dynamo.hash", "backend.dynamo_git_ref", "moved", "built from github.com/ai-dynamo/dynamo at that commit, cached once per ref"),
    Entry("dynamo.top_of_tree", "backend.dynamo_git_ref", "approximated", "`main`, built once and then cached (delete the cache to refresh)"),
    Entry("dynamo.install", "backend.dynamo_install", "moved"),
    Entry("dynamo.request_plane", "DYN_REQUEST_PLANE", "converted", "set in the environment of every worker and frontend"),
    Entry("dynamo.wheel", "", "refused", "install the wheel in the container, or from setup_script"),
    Entry("dynamo.event_plane", "DYN_EVENT_PLANE", "converted", "`zmq` or `nats` (the transport of KV-cache events and load metrics), set in the environment of every worker and frontend, as srt-slurm does; a recipe `environment.DYN_EVENT_PLANE` wins"),
    Entry("dynamo.sidecar", "", "refused", "true: SGLang's own server with its native gRPC port plus Dynamo's sidecar (`python3 -m dynamo.sglang.sidecar`) per worker; srtctl runs the `dynamo.sglang` worker and has no sidecar launch (false is accepted)"),
    Entry("dynamo.policy_catalog", "", "refused", "an external routing-policy crate built into Dynamo (its `custom-policy` cargo feature); srtctl installs Dynamo with pip, without cargo features"),
    Entry("health_check.max_attempts", "health.worker_timeout_s", "converted", "max_attempts x interval_seconds"),
    Entry("health_check.interval_seconds", "health.worker_timeout_s", "converted", "max_attempts x interval_seconds (defaults 180 x 10)"),
    Entry("setup_script", "setup_script", "same", "a script in configs/, run on every worker node first"),
    Entry("environment.*", "backend.*_environment / frontend_environment", "converted", "added to every role's environment and the frontends' (a role's own value wins)"),
    Entry("container_mounts.*", "extra_mount", "converted", "`HOST: CONTAINER` -> `HOST:CONTAINER`; templated paths (`{job_id}`) are refused"),
    Entry("extra_mount", "extra_mount", "same"),
    Entry("srun_options.*", "slurm.srun_options.*", "converted", "extra options of every worker's srun step, from an allow-list (docs/configuration.md); `''` or null: a bare `--OPTION`"),
    Entry("output.log_dir", "(dropped)", "approximated", "runs go to srtslurm.yaml `logs_dir`"),
    Entry("infra.etcd_nats_dedicated_node", "", "refused", "true has no equivalent (NATS and etcd run on the head node); false is accepted"),
    Entry("infra.nats_max_payload_mb", "backend.nats_max_payload", "converted", "N -> `NMB`"),
    Entry("telemetry", "benchmark.metrics_interval_s", "approximated", "srtctl does not run DCGM / node exporters or the incumbent's telemetry sync; it scrapes every worker's, frontend's and router's Prometheus page during each sa-bench point and during a custom benchmark itself (docs/benchmarking.md)"),
    Entry("observability", "benchmark.metrics_interval_s", "approximated", "srtctl does not run the incumbent's observability stack (tachometer); it scrapes every worker's, frontend's and router's Prometheus page during each sa-bench point and during a custom benchmark itself (docs/benchmarking.md)"),
    Entry("enable_config_dump", "(dropped)", "dropped", "srtctl writes resolved.json and plan.json instead"),
    Entry("reporting", "(dropped)", "dropped", "status reporting endpoints; use `srtctl status` / status.json"),
    Entry("identity", "(dropped)", "dropped", "descriptive metadata"),
    Entry("benchmark.type", "benchmark.type", "converted", "`sa-bench`, `manual`, `custom`, `gsm8k`, `mmlu`, `gpqa` as is (the evals get `benchmark.dataset_path` from srtslurm.yaml `eval_datasets_dir`, below); `trace-replay` and `mooncake-router` -> `trace-replay` (srt-loadgen replays the Mooncake-format trace at its timestamps, docs/benchmarking.md; the goodput thresholds default to srt-slurm's 2000 ms / 25 ms); other types are refused"),
    Entry("benchmark.trace_file", "benchmark.trace_file", "converted", "trace-replay: srtctl reads the trace on the head node, outside the container: a container path under one of the recipe's mounts (`extra_mount`, `container_mounts`) becomes the host path; a relative path is refused"),
    Entry("benchmark.mooncake_workload", "benchmark.trace_file", "converted", "mooncake-router: `conversation` (default), `toolagent`, `synthetic` or `mooncake` -> `<eval_datasets_dir>/mooncake/<workload>_trace.jsonl` (srtslurm.yaml; put the Mooncake FAST'25 trace of that name there, compute nodes do not download it); replayed uncapped, as srt-slurm's fixed schedule is"),
    Entry("benchmark.ttft_threshold_ms", "benchmark.ttft_threshold_ms", "same", "trace benchmarks: the goodput's TTFT limit"),
    Entry("benchmark.itl_threshold_ms", "benchmark.itl_threshold_ms", "same", "trace benchmarks: the goodput's limit on a request's mean gap between tokens"),
    Entry("benchmark.aiperf_package", "(dropped)", "approximated", "srtctl replays traces with its own load generator (srt-loadgen), not aiperf"),
    Entry("benchmark.aiperf_args", "", "refused", "extra aiperf flags: srtctl replays traces with its own load generator, not aiperf"),
    Entry("benchmark.command", "benchmark.command", "converted", "custom: the shell string, run with `bash -lc` as srt-slurm does, once, in the job's container on the head node; `http://localhost:8000` (srt-slurm's endpoint) becomes `${SRT_ENDPOINT_URL}` (docs/benchmarking.md)"),
    Entry("benchmark.env.*", "benchmark.env.*", "converted", "custom: the command's environment (secret-looking names are refused: export them where you run srtctl)"),
    Entry("benchmark.container_image", "", "refused", "srtctl runs the custom command in the job's own container (model.container)"),
    Entry("benchmark.isl", "benchmark.isl", "same"),
    Entry("benchmark.osl", "benchmark.osl", "same"),
    Entry("benchmark.concurrencies", "benchmark.concurrencies", "same"),
    Entry("benchmark.req_rate", "benchmark.req_rate", "same"),
    Entry("benchmark.random_range_ratio", "benchmark.random_range_ratio", "same"),
    Entry("benchmark.num_warmup_mult", "benchmark.warmup_multiplier", "moved"),
    Entry("benchmark.num_prompts_mult", "benchmark.prompt_multiplier", "moved"),
    Entry("benchmark.use_chat_template", "(dropped)", "approximated", "srtctl's load generator sends random-token completions prompts, without a chat template"),
    Entry("benchmark.custom_tokenizer", "(dropped)", "approximated", "token counts come from the model's own tokenizer files"),
    Entry("benchmark.tokenizer_mode", "(dropped)", "approximated", "token counts come from the model's own tokenizer files"),
    Entry("benchmark.sweep", "", "refused", "sweeps are not in this srtctl yet"),
    Entry("benchmark.num_examples", "benchmark.num_examples", "same", "gsm8k: the first N questions; MMLU, GPQA: N drawn with a fixed seed (docs/evals.md)"),
    Entry("benchmark.max_tokens", "benchmark.max_tokens", "same"),
    Entry("benchmark.num_shots", "benchmark.num_shots", "same"),
    Entry("benchmark.num_threads", "benchmark.concurrency", "moved", "requests in flight"),
    Entry("benchmark.repeat", "benchmark.repeat", "same", "the eval runs N times over the same questions, as srt-slurm's harness does: the score is the mean, each run's score and the stdev are recorded (docs/evals.md)"),
    *(Entry(f"benchmark.{k}", "", "refused", "srtctl's evals use SGLang's prompts at temperature 0 and have no such setting")
      for k in ("max_context_length", "categories", "temperature", "top_p", "top_k")),
    Entry("profiling.type", "profiling.type", "same", "with benchmark sa-bench: profiling load = its isl/osl and first concurrency, benchmark -> manual"),
    Entry("profiling.prefill.start_step", "profiling.prefill.start_step", "same"),
    Entry("profiling.prefill.stop_step", "profiling.prefill.stop_step", "same"),
    Entry("profiling.decode.start_step", "profiling.decode.start_step", "same"),
    Entry("profiling.decode.stop_step", "profiling.decode.stop_step", "same"),
    Entry("profiling.aggregated.start_step", "profiling.aggregated.start_step", "same"),
    Entry("profiling.aggregated.stop_step", "profiling.aggregated.stop_step", "same"),
    Entry("base", "(the job file)", "converted", "an override file: base is the job, each variant a member of `sweep.zip` (base itself is not run, as in srt-slurm)"),
    Entry("override_*", "sweep.zip", "converted", "one member, named `<name>` (or by the variant's own `name`): base deep-merged with it (mappings merged, lists and scalars replaced); the keys where members differ become zip paths, the member names `sweep.zip.name`"),
    Entry("zip_override_*", "sweep.zip", "converted", "N members, named by its `name` list (else `<name>_<i>`), its list leaves taken pairwise (one-element lists and scalars for all); a key a member lacks or sets to `null` is left out of that member (a null in the zip)"),
)



def lookup(path: tuple[str, ...]) -> Entry | None:
    """The most specific entry for a key path (exact names beat `*`)."""
    best: tuple[list[int], Entry] | None = None
    for e in MAPPING:
        parts = e.source.split(".")
        if len(parts) != len(path):
            continue
        score: list[int] = []
        for want, got in zip(parts, path):
            if want == got:
                score.append(2)
            elif want == "*" or (want.endswith("*") and got.startswith(want[:-1])):
                score.append(1)
            else:
                break
        else:
            score.reverse()  # an exact name further down the path is the more specific entry
            if best is None or score > best[0]:
                best = (score, e)
    return best[1] if best else None


def markdown_table() -> str:
    rows = ["| srt-slurm (v1) key | srtctl key | how | notes |", "| --- | --- | --- | --- |"]
    for e in MAPPING:
        target = f"`{e.target}`" if e.target and not e.target.startswith("(") else (e.target or "—")
        rows.append(f"| `{e.source}` | {target} | {e.how} | {e.note} |")
    return "\n".join(rows) + "\n"


def regenerate_doc(text: str) -> str:
    start, stop = text.find(BEGIN), text.find(END)
    if start < 0 or stop < start:
        raise ValueError(f"docs/migrating.md lacks the markers {BEGIN!r} ... {END!r}")
    return text[:start + len(BEGIN)] + "\n\n" + markdown_table() + "\n" + text[stop:]
