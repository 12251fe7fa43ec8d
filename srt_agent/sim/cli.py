"""Command line of the simulated SGLang worker: `python -m srt_agent.sim [SGLang flags] [--sim-* flags]`.

It takes the same command line as `python -m sglang.launch_server`: the flags the simulator
models are parsed for real, every other SGLang server flag (see sglang_server_args.py) is
accepted and listed in one "ignored" log line, and unknown flags are accepted with a warning.
A node with --node-rank > 0 is a follower of a multi-node worker: like SGLang's followers it
serves no HTTP and just stays up until SIGTERM/SIGINT. It listens on --host as given (default
127.0.0.1): on a real cluster the plan passes the node's address so routers on other nodes reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from srt_agent.errors import DatasetError
from srt_agent.sim import config as defaults
from srt_agent.sim.answers import Answers
from srt_agent.sim.config import SimConfig
from srt_agent.sim.model_dir import shared_model_dir
from srt_agent.sim.server import SimServer
from srt_agent.sim.sglang_server_args import SGLANG_SERVER_FLAGS
from srt_agent.sim.vocab import load_vocab

log = logging.getLogger("srt_agent.sim")

IGNORED_PREFIX = "ignored__"
LOOPBACK = "127.0.0.1"

DESCRIPTION = """\
Simulated SGLang server: SGLang's HTTP API (OpenAI + native endpoints, health, server info,
profiling) with modelled timing and no GPU, for demos, smoke tests and client benchmarks.
Timing: prefill = prompt_tokens / (prefill rate per GPU x tp_size); one decode step every
decode-step-ms + decode-step-ms-per-request x ceil(running / dp_size) ms. See
docs/simulated-engine.md."""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wide lines, so no flag name is ever split across lines in --help."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=48, width=110)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m srt_agent.sim", description=DESCRIPTION, allow_abbrev=False,
        usage="%(prog)s --model-path PATH [--port PORT] [SGLang server flags ...] [simulator flags ...]",
        formatter_class=_HelpFormatter)
    g = parser.add_argument_group("SGLang server arguments modelled by the simulator")
    g.add_argument("--model-path", "--model", default="sim-model",
                   help="Model path or name. A local directory with tokenizer.json is used for "
                        "token counting and output text (default: %(default)s).")
    g.add_argument("--tokenizer-path", help="Tokenizer directory (default: the model path).")
    g.add_argument("--served-model-name", help="Model name in /v1/models (default: the model path).")
    g.add_argument("--host", default="127.0.0.1", help="HTTP host (default: %(default)s).")
    g.add_argument("--port", type=int, default=defaults.DEFAULT_PORT, help="HTTP port (default: %(default)s).")
    g.add_argument("--tensor-parallel-size", "--tp-size", "--tp", dest="tp_size", type=int, default=1,
                   help="Tensor parallel size: scales the prefill rate (default: %(default)s).")
    g.add_argument("--data-parallel-size", "--dp-size", "--dp", dest="dp_size", type=int, default=1,
                   help="Data parallel size: the decode step grows with running/dp (default: %(default)s).")
    g.add_argument("--expert-parallel-size", "--ep-size", "--ep", dest="ep_size", type=int, default=1,
                   help="Expert parallel size (reported only) (default: %(default)s).")
    g.add_argument("--disaggregation-mode", choices=list(defaults.ROLES), default="null",
                   help="prefill, decode or null (aggregated) (default: %(default)s).")
    g.add_argument("--disaggregation-bootstrap-port", type=int, default=defaults.DEFAULT_BOOTSTRAP_PORT,
                   help="KV bootstrap port a prefill worker listens on (default: %(default)s).")
    g.add_argument("--dist-init-addr", "--nccl-init-addr", help="Leader HOST:PORT of a multi-node worker.")
    g.add_argument("--nnodes", type=int, default=1, help="Nodes of this worker (default: %(default)s).")
    g.add_argument("--node-rank", type=int, default=0,
                   help="Rank of this node; ranks > 0 serve no HTTP (default: %(default)s).")
    g.add_argument("--max-running-requests", type=int, help="Running batch capacity (default: 1024).")
    g.add_argument("--max-prefill-tokens", type=int, default=defaults.DEFAULT_MAX_PREFILL_TOKENS,
                   help="Token budget of one prefill batch (default: %(default)s).")
    g.add_argument("--stream-interval", type=int, default=1,
                   help="Tokens per streamed chunk (default: %(default)s).")
    g.add_argument("--context-length", type=int,
                   help="Context length (default: config.json max_position_embeddings, else 131072).")
    g.add_argument("--log-level", default="info", help="Logging level (default: %(default)s).")

    s = parser.add_argument_group("Simulator parameters (not SGLang flags)")
    s.add_argument("--sim-prefill-tokens-per-s-per-gpu", type=float,
                   default=defaults.DEFAULT_PREFILL_TOKENS_PER_S_PER_GPU,
                   help="Prefill throughput per GPU; 0 = instant (default: %(default)s).")
    s.add_argument("--sim-decode-step-ms", type=float, default=defaults.DEFAULT_DECODE_STEP_MS,
                   help="Decode step time with an empty batch (default: %(default)s).")
    s.add_argument("--sim-decode-step-ms-per-request", type=float,
                   default=defaults.DEFAULT_DECODE_STEP_MS_PER_REQUEST,
                   help="Added step time per running request of a DP rank (default: %(default)s).")
    s.add_argument("--sim-max-running-requests", type=int,
                   help="Running batch capacity; wins over max-running-requests (default: that, else 1024).")
    s.add_argument("--sim-startup-s", type=float, default=defaults.DEFAULT_STARTUP_S,
                   help="Seconds before /health turns 200 (default: %(default)s).")
    s.add_argument("--sim-kv-transfer-ms", type=float, default=defaults.DEFAULT_KV_TRANSFER_MS,
                   help="Decode role: KV transfer time after the prefill finished (default: %(default)s).")
    s.add_argument("--sim-kv-timeout-s", type=float, default=defaults.DEFAULT_KV_TIMEOUT_S,
                   help="Decode role: give up waiting for a prefill after this long; 0 = never "
                        "(default: %(default)s).")
    s.add_argument("--sim-eos-probability", type=float, default=defaults.DEFAULT_EOS_PROBABILITY,
                   help="Per-token EOS probability after min_tokens unless ignore_eos (default: %(default)s).")
    s.add_argument("--sim-seed", type=int, default=defaults.DEFAULT_SEED,
                   help="Seed of the generated tokens (default: %(default)s).")
    s.add_argument("--sim-answers-dataset", default=None, metavar="PATH",
                   help="Answer questions of this eval dataset (gsm8k .jsonl, MMLU directory, GPQA .csv).")
    s.add_argument("--sim-answers-accuracy", type=float, default=1.0,
                   help="Fraction of the dataset's questions answered correctly (default: %(default)s).")
    s.add_argument("--sim-event-loop", choices=["auto", "uvloop", "asyncio"], default="auto",
                   help="Event loop; auto = uvloop if installed (default: %(default)s).")

    i = parser.add_argument_group(
        "Other SGLang server arguments",
        "Accepted with any values and logged as ignored; reported in /server_info.")
    taken = set(parser._option_string_actions)
    for name in SGLANG_SERVER_FLAGS:
        flag = "--" + name
        if flag not in taken:
            i.add_argument(flag, nargs="*", metavar="V", dest=IGNORED_PREFIX + name.replace("-", "_"))
    return parser


def _ignored_value(values: list[str]) -> object:
    if not values:
        return True
    return values[0] if len(values) == 1 else list(values)


def _model_dir_context_length(directory: str | None) -> int | None:
    if not directory:
        return None
    try:
        value = json.loads((Path(directory) / "config.json").read_text()).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 0 else None


def local_dir(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path and Path(path).is_dir() else None


def parse_config(argv: list[str] | None = None) -> tuple[SimConfig, argparse.Namespace, list[str]]:
    """(config, parsed namespace, unknown args). Exits with status 2 on invalid values."""
    parser = build_parser()
    ns, unknown = parser.parse_known_args(argv)
    ignored = {}
    for dest, values in vars(ns).items():
        if dest.startswith(IGNORED_PREFIX) and values is not None:
            ignored[dest[len(IGNORED_PREFIX):]] = _ignored_value(values)
    tokenizer_dir = local_dir(ns.tokenizer_path) or local_dir(ns.model_path)
    host = ns.host
    try:
        config = SimConfig(
            model_path=ns.model_path, tokenizer_path=ns.tokenizer_path, served_model_name=ns.served_model_name,
            host=host, port=ns.port, tp_size=ns.tp_size, dp_size=ns.dp_size, ep_size=ns.ep_size,
            disaggregation_mode=ns.disaggregation_mode,
            disaggregation_bootstrap_port=ns.disaggregation_bootstrap_port, dist_init_addr=ns.dist_init_addr,
            nnodes=ns.nnodes, node_rank=ns.node_rank, max_running_requests=ns.max_running_requests,
            max_prefill_tokens=ns.max_prefill_tokens, stream_interval=ns.stream_interval,
            context_length=(ns.context_length or _model_dir_context_length(tokenizer_dir)
                            or defaults.DEFAULT_CONTEXT_LENGTH),
            prefill_tokens_per_s_per_gpu=ns.sim_prefill_tokens_per_s_per_gpu,
            decode_step_ms=ns.sim_decode_step_ms, decode_step_ms_per_request=ns.sim_decode_step_ms_per_request,
            sim_max_running_requests=ns.sim_max_running_requests, startup_s=ns.sim_startup_s,
            kv_transfer_ms=ns.sim_kv_transfer_ms, kv_timeout_s=ns.sim_kv_timeout_s,
            eos_probability=ns.sim_eos_probability, seed=ns.sim_seed, ignored_args=ignored,
            answers_dataset=ns.sim_answers_dataset, answers_accuracy=ns.sim_answers_accuracy)
    except ValueError as exc:
        parser.error(str(exc))
    return config, ns, unknown


def _describe_ignored(argv: list[str], ns: argparse.Namespace) -> str:
    parts = []
    for dest, values in sorted(vars(ns).items()):
        if dest.startswith(IGNORED_PREFIX) and values is not None:
            flag = "--" + dest[len(IGNORED_PREFIX):].replace("_", "-")
            parts.append(flag if not values else f"{flag}={' '.join(values)}")
    return " ".join(parts)


class _Http2ProbeFilter(logging.Filter):
    """sglang-router probes workers with HTTP/2 (gRPC) before HTTP/1.1; aiohttp answers 400 and
    would log a traceback per probe. Keep one short debug line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ == "BadHttpMessage" and "PRI" in str(exc):
            record.msg, record.args, record.exc_info, record.exc_text = (
                "Rejected an HTTP/2 prior-knowledge probe (HTTP/1.1 only)", (), None, None)
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return log.isEnabledFor(logging.DEBUG)
        return True


def _setup_logging(level: str) -> None:
    logging.basicConfig(format="[%(asctime)s] %(message)s", datefmt="%Y-%m-%d %H:%M:%S",
                        level=getattr(logging, str(level).upper(), logging.INFO), stream=sys.stdout, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_Http2ProbeFilter())


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def _follow(config: SimConfig) -> int:
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    log.info("Node rank %d of %d: follower of %s; no HTTP server, waiting for SIGTERM.",
             config.node_rank, config.nnodes, config.dist_init_addr or "the leader")
    await stop.wait()
    log.info("Follower exiting.")
    return 0


async def _serve(config: SimConfig) -> int:
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    tokenizer_dir = local_dir(config.tokenizer_path) or local_dir(config.model_path)
    vocab = load_vocab(tokenizer_dir)
    # sglang-router loads its tokenizer from the reported model_path: always report a local
    # directory, or the router would try to download one from the hub.
    reported_tokenizer = tokenizer_dir or _shared_tokenizer_dir(config.model_path)
    if not local_dir(config.model_path):
        log.info("--model-path %s is not a local directory: /server_info reports model_path=%s (a local "
                 "tokenizer for routers)", config.model_path, reported_tokenizer)
    server = SimServer(config, vocab, tokenizer_path=reported_tokenizer,
                       reported_model_path=local_dir(config.model_path) or reported_tokenizer)
    if config.answers_dataset:
        try:
            server.answers = Answers(config.answers_dataset, config.answers_accuracy)
        except DatasetError as exc:
            log.error("--sim-answers-dataset: %s", exc)
            return 2
        log.info("answering %d %s questions from %s, %.0f%% correctly", len(server.answers.entries),
                 server.answers.task, config.answers_dataset, 100 * config.answers_accuracy)
    log.info("role=%s tp=%d dp=%d ep=%d nnodes=%d max_running=%d prefill=%g tok/s/GPU "
             "decode_step=%g+%g*ceil(n/dp) ms kv_transfer=%g ms startup=%g s vocab=%s(%d candidates) seed=%d",
             config.role, config.tp_size, config.dp_size, config.ep_size, config.nnodes,
             config.effective_max_running_requests, config.prefill_tokens_per_s_per_gpu, config.decode_step_ms,
             config.decode_step_ms_per_request, config.kv_transfer_ms, config.startup_s, vocab.source,
             len(vocab.candidate_ids), config.seed)
    try:
        await server.start()
    except OSError as exc:
        log.error("Cannot start the simulated server: %s", exc)
        await server.close()
        return 1
    await stop.wait()
    log.info("Shutting down.")
    await server.close()
    return 0


def _shared_tokenizer_dir(model_path: str) -> str:
    """A local tokenizer dir to report when --model-path is not a local directory."""
    try:
        return str(shared_model_dir())
    except ImportError:
        log.warning("`tokenizers` is not installed: /server_info reports tokenizer_path=%s", model_path)
        return model_path


def _run(coro, event_loop: str) -> int:
    if event_loop != "asyncio":
        try:
            import uvloop

            return uvloop.run(coro) if hasattr(uvloop, "run") else _run_with_policy(coro, uvloop)
        except ImportError:
            if event_loop == "uvloop":
                log.warning("uvloop is not installed; using asyncio's event loop")
    return asyncio.run(coro)


def _run_with_policy(coro, uvloop_module) -> int:
    asyncio.set_event_loop_policy(uvloop_module.EventLoopPolicy())
    return asyncio.run(coro)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    config, ns, unknown = parse_config(argv)
    _setup_logging(ns.log_level)
    ignored = _describe_ignored(argv, ns)
    if ignored:
        log.info("Ignored SGLang flags (accepted, not modelled): %s", ignored)
    if unknown:
        log.warning("Unknown flags (not SGLang server flags the simulator knows; ignored): %s", " ".join(unknown))
    if config.node_rank > 0:
        return _run(_follow(config), ns.sim_event_loop)
    return _run(_serve(config), ns.sim_event_loop)
