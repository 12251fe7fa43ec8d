"""Simulated workers behind a real nginx (a minimal config written here; the product's template is
tested elsewhere): round robin, unbuffered SSE, and HTTP/1.0 upstreams (no chunked encoding)."""

from __future__ import annotations

import asyncio
import itertools
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sim_helpers import free_port, http_status, require_tool, sse_events

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

CONF = """\
daemon off;
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log info;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {run}/client_body;
  proxy_temp_path {run}/proxy;
  fastcgi_temp_path {run}/fastcgi;
  uwsgi_temp_path {run}/uwsgi;
  scgi_temp_path {run}/scgi;
  upstream sims {{
{servers}
    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://sims;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
    location /http10/ {{
      proxy_pass http://sims/;
      proxy_http_version 1.0;
      proxy_buffering off;
    }}
  }}
}}
"""


@pytest.fixture
def nginx(tmp_path):
    require_tool(NGINX is not None, "nginx (apt-get install nginx-light)")
    procs = []

    def start(upstream_ports: list[int]) -> str:
        run = tmp_path / "nginx"
        run.mkdir()
        port = free_port()
        servers = "\n".join(f"    server 127.0.0.1:{p};" for p in upstream_ports)
        (run / "nginx.conf").write_text(CONF.format(run=run, port=port, servers=servers))
        proc = subprocess.Popen([NGINX, "-e", str(run / "error.log"), "-p", f"{run}/", "-c", str(run / "nginx.conf")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        deadline = time.monotonic() + 10
        while http_status(port, "/health") != 200:
            assert proc.poll() is None, (run / "error.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def metric(url: str, name: str) -> float:
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(name)


async def timed_streams(url: str, n: int, path: str = "/v1/completions") -> list[tuple[list[float], list]]:
    async with httpx.AsyncClient(timeout=30) as client:
        async def one() -> tuple[list[float], list]:
            body = {"model": "m", "prompt": "hello", "max_tokens": 6, "ignore_eos": True, "stream": True,
                    "stream_options": {"include_usage": True}}
            arrivals, lines = [], []
            async with client.stream("POST", url + path, json=body) as resp:
                assert resp.status_code == 200
                async for line in resp.aiter_lines():
                    if line.startswith("data: {"):
                        arrivals.append(time.perf_counter())
                    lines.append(line)
            return arrivals, sse_events(lines)

        return await asyncio.gather(*(one() for _ in range(n)))


def test_round_robin_and_unbuffered_sse(start_sim, nginx):
    sims = [start_sim("--sim-decode-step-ms", "50", "--sim-decode-step-ms-per-request", "0") for _ in range(2)]
    url = nginx([s.port for s in sims])
    before = [metric(s.url, "sglang:num_requests_total") for s in sims]
    results = asyncio.run(timed_streams(url, 4))
    after = [metric(s.url, "sglang:num_requests_total") for s in sims]
    assert [a - b for a, b in zip(after, before)] == [2, 2]
    for arrivals, events in results:
        assert events[-1] == "[DONE]" and events[-2]["usage"]["completion_tokens"] == 6
        # chunks arrive one decode step apart, not all at once at the end: nginx does not buffer
        gaps = [b - a for a, b in itertools.pairwise(arrivals[:6])]
        assert statistics.median(gaps) >= 0.04, gaps


def test_http10_upstream_streams_without_chunked_encoding(start_sim, nginx):
    sim = start_sim("--sim-decode-step-ms", "20", "--sim-decode-step-ms-per-request", "0")
    url = nginx([sim.port])
    ((_arrivals, events),) = asyncio.run(timed_streams(url, 1, path="/http10/v1/completions"))
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["text"] for e in events[:-2]).count(" ") == 6
    assert events[-2]["usage"]["completion_tokens"] == 6
    plain = httpx.post(url + "/http10/v1/completions", json={"prompt": "x", "max_tokens": 3}).json()
    assert plain["usage"]["completion_tokens"] == 3
