"""The multi-node client: clock offsets (an injected offset must cancel), the worker layout over
server addresses, and a whole point from two local "nodes" against two real SSE servers."""

import json
import os
import socket
import sys
import time

import pytest

from srt_agent.errors import BenchmarkError
from srt_agent.loadgen import LoadConfig, run_point
from srt_agent.loadgen.clock import estimate_offset, measure_offset
from srt_agent.loadgen.multinode import Coordinator, main, node_argv, run_multinode
from srt_agent.loadgen.node import node_slices, worker_layout


def test_offset_estimate_takes_the_minimum_round_trip_sample():
    # node clock = coordinator clock - 100; the first two samples were delayed one way
    samples = [(0.0, 100.9, 1.0), (2.0, 102.1, 2.6), (3.0, 103.001, 3.002)]
    offset, rtt = estimate_offset(samples)
    assert rtt == pytest.approx(0.002) and offset == pytest.approx(100.0, abs=1e-9)
    with pytest.raises(BenchmarkError):
        estimate_offset([])


@pytest.mark.parametrize("skew", [0.0, 37.25, -1234.5])
def test_measured_offset_cancels_an_injected_clock_offset(skew):
    server = socket.create_server(("127.0.0.1", 0))
    coord = Coordinator(server, 1, "tok", [])
    node = socket.create_connection(server.getsockname())
    from srt_agent.loadgen.clock import send_msg

    send_msg(node, {"t": "hello", "token": "tok", "index": 0, "node": "n0"})
    coord.accept_all(timeout=10)
    offset, rtt = measure_offset(node, lambda: time.monotonic() + skew)
    assert 0 < rtt < 0.05
    assert offset == pytest.approx(-skew, abs=rtt / 2 + 1e-6)
    node.close()
    server.close()


def test_coordinator_ignores_a_peer_without_the_token():
    server = socket.create_server(("127.0.0.1", 0))
    coord = Coordinator(server, 1, "right", [])
    from srt_agent.loadgen.clock import send_msg

    stranger = socket.create_connection(server.getsockname())
    send_msg(stranger, {"t": "hello", "token": "wrong", "index": 0, "node": "x"})
    with pytest.raises(BenchmarkError, match="did not connect"):
        coord.accept_all(timeout=1.0)
    assert coord.conns == {}
    server.close()


def test_worker_layout_spreads_every_node_over_the_servers_within_the_limit():
    servers = [("a", 1), ("b", 2), ("c", 3)]
    lay = worker_layout(10, 2, servers, limit=4)
    per = {}
    for n, s in lay:
        per[s] = per.get(s, 0) + n
    assert sum(per.values()) == 10 and sorted(per.values()) == [3, 3, 4] and len(lay) == 3
    assert worker_layout(2, 1, servers, limit=4) == [(1, ("a", 1)), (1, ("b", 2))]
    with pytest.raises(BenchmarkError, match="max_connections_per_pair"):
        worker_layout(13, 2, servers, limit=4)


def test_node_slices_partition_the_requests_like_the_concurrency():
    cfg = LoadConfig(url="http://x:1", model="m", isl=8, osl=8, concurrency=5, num_prompts=50, warmup_multiplier=2)
    slices = node_slices(cfg, 2)
    assert [c for c, _, _ in slices] == [3, 2]
    assert slices[0][1] + slices[1][1] == list(range(50)) and [len(s[1]) for s in slices] == [30, 20]
    assert [len(s[2]) for s in slices] == [6, 4]


def test_node_argv_drops_the_coordinator_options():
    argv = ["--client-nodes", "a,b", "--executor=local", "--url", "u", "--bind", "h", "--out", "o", "--seed", "1"]
    assert node_argv(argv) == ["--url", "u", "--seed", "1"]


@pytest.fixture(scope="module")
def second_server(sse_server):
    s = type(sse_server)()  # conftest.SseServer, on the next free port
    s.start()
    yield s
    s.stop()


def test_two_nodes_with_a_skewed_clock_merge_into_one_single_node_shaped_result(sse_server, second_server,
                                                                                 tmp_path, monkeypatch):
    monkeypatch.setenv("SRT_LOADGEN_CLOCK_SKEW_S", "0,-37.5")
    a, b = sse_server, second_server
    before = (a.requests, b.requests)
    model = "ok;ttft=20;itl=2"
    common = ["--url", a.url, "--model", model, "--isl", "32", "--osl", "6", "--concurrency", "6",
              "--num-prompts", "36", "--warmup-multiplier", "1", "--processes", "1"]
    out = tmp_path / "r.json"
    rc = main(["--client-nodes", "n1,n2", "--executor", "local", "--servers",
               f"127.0.0.1:{a.port},127.0.0.1:{b.port}", *common, "--out", str(out)])
    assert rc == 0
    r = json.loads(out.read_text())
    assert (r["completed"], r["failed"], r["max_concurrency"], r["num_prompts"]) == (36, 0, 6, 36)
    # both nodes talked to both servers: 36 measured + 6 warmup requests in all
    assert a.requests - before[0] + b.requests - before[1] == 42
    assert a.requests - before[0] >= 12 and b.requests - before[1] >= 12
    nodes = r["client_nodes"]
    assert [(n["node"], n["concurrency"], n["num_requests"]) for n in nodes] == [("n1", 3, 18), ("n2", 3, 18)]
    assert nodes[0]["clock_offset_s"] == pytest.approx(0.0, abs=0.01)
    assert nodes[1]["clock_offset_s"] == pytest.approx(37.5, abs=0.01)  # cancels the injected -37.5 s
    assert all(len(n["servers"]) == 2 for n in nodes)
    # the skew is gone from the merged times: TTFT is the server's 20 ms plus a little, on both nodes
    assert 20 <= r["median_ttft_ms"] < 200 and r["p99_ttft_ms"] < 500
    assert all(20 <= n["median_ttft_ms"] < 200 for n in nodes)
    assert 0 < r["duration"] < 10 and r["p99_schedule_delay_ms"] < 200
    single = run_point(LoadConfig(url=a.url, model=model, isl=32, osl=6, concurrency=2, num_prompts=4,
                                  warmup_multiplier=0, processes=1))
    # the CLI's keys: run_point's, the per-node statistics and the validity gate's verdict
    assert set(r) == set(single) | {"client_nodes", "valid", "invalid_reason", "max_failed_fraction"}
    assert r["valid"] is True


def test_a_failing_node_fails_the_point_with_its_own_message(sse_server, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["--client-nodes", "n1,n2", "--executor", "local", "--servers", f"127.0.0.1:{sse_server.port}",
               "--url", sse_server.url, "--model", "ok", "--isl", "8", "--osl", "2", "--concurrency", "2",
               "--num-prompts", "2", "--tokenizer", str(tmp_path / "no-such-tokenizer"), "--out", str(out)])
    assert rc != 0 and not out.exists()
    err = capsys.readouterr().err
    assert "load-generator node" in err and "failed" in err and "no-such-tokenizer" in err, err


HUNG_NODE = """
import os, socket, sys, time
from srt_agent.loadgen.clock import send_msg
from srt_agent.loadgen.node import TOKEN_ENV
host, _, port = sys.argv[sys.argv.index("--coordinator") + 1].rpartition(":")
sock = socket.create_connection((host, int(port)))
send_msg(sock, {"t": "hello", "token": os.environ[TOKEN_ENV], "index": int(os.environ["SRT_LOADGEN_NODE_INDEX"]),
                "node": os.environ["SRT_LOADGEN_NODE_NAME"]})
time.sleep(600)  # connected, then never a word: a node stuck in the kernel or behind a dead link
"""


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_node_that_hangs_silently_fails_the_point_at_the_phase_limit_and_is_stopped(tmp_path):
    script = tmp_path / "hung_node.py"
    script.write_text(HUNG_NODE)
    config = LoadConfig(url="http://127.0.0.1:9/v1", model="m", isl=8, osl=2, concurrency=2, num_prompts=2)
    fds = _open_fds()
    t0 = time.monotonic()
    with pytest.raises(BenchmarkError, match="did not report 'ready' within 1 s"):
        run_multinode(config, ["n1", "n2"], "local", "127.0.0.1", [sys.executable, str(script)], phase_timeout=1.0)
    assert time.monotonic() - t0 < 30
    assert _open_fds() == fds  # the server socket and both node connections are closed


def test_a_node_that_cannot_start_leaks_no_socket(tmp_path):
    config = LoadConfig(url="http://127.0.0.1:9/v1", model="m", isl=8, osl=2, concurrency=2, num_prompts=2)
    fds = _open_fds()
    with pytest.raises(BenchmarkError, match="node step exited with code 127"):
        run_multinode(config, ["n1", "n2"], "local", "127.0.0.1", [str(tmp_path / "no-such-program")])
    assert _open_fds() == fds


def test_the_cli_gives_the_coordinator_the_nodes_phase_timeout_plus_a_grace(sse_server, tmp_path, capsys):
    """--phase-timeout reaches the nodes (which stop and say why) and bounds the coordinator too."""
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    rc = main(["--client-nodes", "n1", "--executor", "local", "--servers", f"127.0.0.1:{sse_server.port}",
               "--url", sse_server.url, "--model", "ok;ttft=3000", "--isl", "8", "--osl", "2", "--concurrency", "1",
               "--num-prompts", "1", "--warmup-multiplier", "0", "--processes", "1", "--phase-timeout", "1",
               "--out", str(out)])
    assert rc != 0 and not out.exists()
    assert time.monotonic() - t0 < 15
    assert "load-generator node 0 (n1) failed" in capsys.readouterr().err
