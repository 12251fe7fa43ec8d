"""The command line: SGLang's flags, --help for preflights, followers, signals."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sim_helpers import http_status

from srt_agent.sim.cli import build_parser, parse_config
from srt_agent.sim.config import SimConfig
from srt_agent.sim.sglang_server_args import SGLANG_SERVER_FLAGS


@pytest.fixture(scope="module")
def help_text() -> str:
    return subprocess.run([sys.executable, "-m", "srt_agent.sim", "--help"], capture_output=True, text=True,
                          check=True).stdout


def test_help_lists_modelled_sim_and_real_sglang_flags(help_text):
    tokens = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_text))
    for flag in ("--model-path", "--served-model-name", "--host", "--port", "--tp-size", "--tensor-parallel-size",
                 "--dp-size", "--data-parallel-size", "--ep-size", "--expert-parallel-size", "--disaggregation-mode",
                 "--disaggregation-bootstrap-port", "--dist-init-addr", "--nnodes", "--node-rank",
                 "--max-running-requests", "--sim-prefill-tokens-per-s-per-gpu", "--sim-decode-step-ms",
                 "--sim-decode-step-ms-per-request", "--sim-max-running-requests", "--sim-startup-s",
                 "--sim-kv-transfer-ms", "--sim-seed",
                 # real SGLang flags a preflight must find
                 "--kv-cache-dtype", "--mem-fraction-static", "--enable-dp-attention", "--chunked-prefill-size",
                 "--cuda-graph-max-bs", "--moe-a2a-backend", "--disaggregation-transfer-backend",
                 "--enable-two-batch-overlap", "--deepep-mode", "--trust-remote-code", "--watchdog-timeout"):
        assert flag in tokens, flag
    assert {"--" + f for f in SGLANG_SERVER_FLAGS} <= tokens
    assert len(SGLANG_SERVER_FLAGS) > 300
    # no flag name is cut by line wrapping (a preflight would read "--max-running-" as a flag)
    assert not [t for t in tokens if t.endswith("-")]


def test_parse_config_aliases_and_ignored_values():
    config, _, unknown = parse_config([
        "--model", "m", "--tp", "8", "--dp-size", "2", "--ep", "16", "--disaggregation-mode", "decode",
        "--dist-init-addr", "127.0.0.1:5000", "--nnodes", "2", "--node-rank", "1", "--mem-fraction-static", "0.8",
        "--enable-dp-attention", "--cuda-graph-bs", "1", "2", "--chunked-prefill-size", "-1",
        "--json-model-override-args={\"a\": 1}", "--sim-decode-step-ms", "7", "--no-such-flag", "v"])
    assert (config.model_path, config.tp_size, config.dp_size, config.ep_size) == ("m", 8, 2, 16)
    assert (config.role, config.nnodes, config.node_rank) == ("decode", 2, 1)
    assert config.decode_step_ms == 7
    assert config.ignored_args == {"mem_fraction_static": "0.8", "enable_dp_attention": True,
                                   "cuda_graph_bs": ["1", "2"], "chunked_prefill_size": "-1",
                                   "json_model_override_args": '{"a": 1}'}
    assert unknown == ["--no-such-flag", "v"]


@pytest.mark.parametrize("argv", [["--node-rank", "2", "--nnodes", "2"], ["--tp-size", "0"],
                                  ["--sim-decode-step-ms", "-1"], ["--disaggregation-mode", "both"],
                                  ["--sim-eos-probability", "2"]])
def test_invalid_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(argv)
    assert exc.value.code == 2


def test_timing_formulas():
    c = SimConfig(tp_size=4, dp_size=2, prefill_tokens_per_s_per_gpu=1000, decode_step_ms=10,
                  decode_step_ms_per_request=0.5)
    assert c.prefill_seconds(8000) == pytest.approx(2.0)
    assert c.decode_step_seconds(0) == pytest.approx(0.010)
    assert c.decode_step_seconds(5) == pytest.approx((10 + 0.5 * 3) / 1000)
    assert SimConfig(prefill_tokens_per_s_per_gpu=0).prefill_seconds(10**6) == 0
    assert SimConfig().effective_max_running_requests == 1024
    assert SimConfig(max_running_requests=7).effective_max_running_requests == 7
    assert SimConfig(max_running_requests=7, sim_max_running_requests=3).effective_max_running_requests == 3


def test_parser_has_no_abbreviations():
    # SGLang flags that share a prefix with a modelled one must not be swallowed by it
    assert build_parser().allow_abbrev is False


def test_follower_node_serves_nothing_and_exits_on_sigterm(start_sim):
    sim = start_sim("--nnodes", "2", "--node-rank", "1", "--dist-init-addr", "127.0.0.1:5000", healthy=False,
                    listen=False)
    deadline = time.monotonic() + 20
    while "follower" not in sim.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Node rank 1 of 2: follower" in sim.log
    assert http_status(sim.port, "/health") is None
    assert sim.proc.poll() is None
    assert sim.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_exit_on_signal_even_while_streaming(start_sim, sig):
    sim = start_sim("--sim-decode-step-ms", "50")
    conn = socket.create_connection(("127.0.0.1", sim.port))
    body = b'{"prompt": "x", "max_tokens": 1000, "stream": true}'
    conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    t0 = time.monotonic()
    assert sim.stop(sig) == 0
    assert time.monotonic() - t0 < 5
    assert "Shutting down." in sim.log
    conn.close()


def test_port_in_use_exits_1(start_sim):
    sim = start_sim()
    proc = subprocess.run([sys.executable, "-m", "srt_agent.sim", "--port", str(sim.port)], capture_output=True,
                          text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert "Cannot start the simulated server" in proc.stdout


def test_ignored_flags_logged_in_one_line(start_sim):
    sim = start_sim("--mem-fraction-static", "0.8", "--enable-dp-attention", "--kv-cache-dtype", "fp8_e4m3")
    lines = [line for line in sim.log.splitlines() if "Ignored SGLang flags" in line]
    assert len(lines) == 1
    for part in ("--mem-fraction-static=0.8", "--enable-dp-attention", "--kv-cache-dtype=fp8_e4m3"):
        assert part in lines[0]


def test_host_is_honoured(tmp_path):
    """The simulator binds --host as given: on a real cluster that is the node's address."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "srt_agent.sim", "--host", "127.0.0.2", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        listening: set = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and ("0200007F", port) not in listening:
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                if state == "0A":  # LISTEN
                    addr, p = local.split(":")
                    listening.add((addr, int(p, 16)))
            time.sleep(0.1)
        assert ("0200007F", port) in listening and ("0100007F", port) not in listening
    finally:
        proc.terminate()
        proc.wait(timeout=10)
