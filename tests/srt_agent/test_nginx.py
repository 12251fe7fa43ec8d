"""nginx config rendering: golden file, `nginx -t`, hostile values, and a real proxy in front of two
streaming upstreams (round robin, unbuffered SSE)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srt_agent.errors import ConfigError
from srt_agent.nginx import nginx_command, nginx_test_command, render_nginx_conf

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "nginx.conf"
GOLDEN_ACCESS_LOG = Path(__file__).resolve().parent.parent / "golden" / "nginx-access-log.conf"
NGINX = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx") or None
UPSTREAMS = [("10.0.0.2", 8001), ("10.0.0.3", 8001), ("fd00::4", 8002)]


def need_nginx() -> str:
    if NGINX:
        return NGINX
    if os.environ.get("CI") == "true":
        pytest.fail("nginx is not installed (apt-get install nginx-light)")
    pytest.skip("nginx is not installed (apt-get install nginx-light)")


def check_golden(path: Path, text: str) -> None:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"rendered nginx.conf differs from {path} (UPDATE_GOLDEN=1 to accept)"


def test_golden_conf():
    check_golden(GOLDEN, render_nginx_conf("10.0.0.1", 8000, UPSTREAMS, "/srv/srt/logs/nginx"))


def test_golden_conf_with_access_log():
    check_golden(GOLDEN_ACCESS_LOG, render_nginx_conf("10.0.0.1", 8000, UPSTREAMS[:1], "/srv/srt/logs/nginx",
                                                      access_log=True, worker_processes=4))


def test_conf_has_the_settings_that_matter():
    conf = render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/run/x")
    for line in ("daemon off;", "proxy_http_version 1.1;", 'proxy_set_header Connection "";',
                 "proxy_buffering off;", "keepalive 512;", "worker_connections 65536;",
                 "worker_rlimit_nofile 132096;", "access_log off;", 'pid "/run/x/nginx.pid";',
                 "proxy_read_timeout 86400s;", "proxy_send_timeout 86400s;", "client_max_body_size 0;"):
        assert line in conf, line
    # Every path nginx writes is inside the run directory.
    for directive in ("pid", "error_log", "client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path",
                      "uwsgi_temp_path", "scgi_temp_path"):
        lines = [x.strip() for x in conf.splitlines() if x.strip().startswith(directive + " ")]
        assert len(lines) == 1 and lines[0].split()[1].startswith('"/run/x/'), (directive, lines)


def test_nginx_command():
    assert nginx_command("/r/nginx.conf", "/r") == ["nginx", "-e", "/r/error.log", "-p", "/r/", "-c", "/r/nginx.conf"]
    assert nginx_test_command("/r/nginx.conf", "/r", nginx="/usr/sbin/nginx")[-2:] == ["-t", "-q"]
    with pytest.raises(ConfigError):
        nginx_command("/r/nginx.conf;", "/r")


@pytest.mark.parametrize("access_log", [False, True])
def test_nginx_accepts_rendered_conf(tmp_path, access_log):
    nginx = need_nginx()
    run_dir = tmp_path / "run dir with spaces"
    run_dir.mkdir()
    conf = run_dir / "nginx.conf"
    conf.write_text(render_nginx_conf("127.0.0.1", 33990, [("127.0.0.1", 33991), ("::1", 33992)], str(run_dir),
                                      access_log=access_log))
    proc = subprocess.run(nginx_test_command(str(conf), str(run_dir), nginx=nginx), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr + (run_dir / "error.log").read_text()


HOSTILE_HOSTS = ["", "fe80::1%eth0", "127.0.0.1;", "a b", "evil}", "x{", "host\nlisten 80", "::1]", "[::1]", "-bad", "bad-",
                 'x"y', "x'y", "a..b", "$host", "h#c", "127.0.0.1:80", "a" * 64, None, 12, b"127.0.0.1"]
HOSTILE_PORTS = [0, -1, 65536, "80", True, 80.0, None]
HOSTILE_DIRS = ["relative/dir", "", "/tmp/a;b", "/tmp/a{b", "/tmp/a}b", "/tmp/$x", "/tmp/a\nb", '/tmp/"q',
                "/tmp/'q", "/tmp/a#b", "/tmp/a\\b", "/tmp/a\x00b", "/tmp/a\tb", None]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_hostile_hosts_rejected(host):
    with pytest.raises(ConfigError):
        render_nginx_conf(host, 8000, [("127.0.0.1", 8001)], "/r")
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, [(host, 8001)], "/r")


@pytest.mark.parametrize("port", HOSTILE_PORTS)
def test_hostile_ports_rejected(port):
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", port, [("127.0.0.1", 8001)], "/r")
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", port)], "/r")


@pytest.mark.parametrize("run_dir", HOSTILE_DIRS)
def test_hostile_dirs_rejected(run_dir):
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], run_dir)


@pytest.mark.parametrize("upstreams", [[], "127.0.0.1:8001", [("127.0.0.1",)], [("127.0.0.1", 8001, 1)],
                                       [("127.0.0.1", 8001), ("127.0.0.1", 8001)], None])
def test_bad_upstream_lists_rejected(upstreams):
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, upstreams, "/r")


@pytest.mark.parametrize("kwargs", [{"worker_connections": "65536"}, {"worker_connections": 0},
                                    {"upstream_keepalive": True}, {"timeout_s": "1d"},
                                    {"worker_processes": "auto;"}, {"worker_rlimit_nofile": 1.5},
                                    {"listen_backlog": -1}])
def test_bad_tunables_rejected(kwargs):
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/r", **kwargs)


BASELINE_LINES = render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/r").count("\n")


@settings(max_examples=300, deadline=None)
@given(host=st.text(max_size=40), run_dir=st.text(max_size=40).map(lambda s: "/" + s))
def test_any_accepted_value_stays_one_token(host, run_dir):
    """Whatever text comes in: either ConfigError, or a conf with the same structure whose values
    carry no nginx syntax characters outside quotes."""
    try:
        conf = render_nginx_conf(host, 8000, [(host, 8001)], run_dir)
    except ConfigError:
        return
    assert conf.count("\n") == BASELINE_LINES
    assert not set(host) & set(";{}\"'$# \\\n\t")
    assert not set(run_dir) & set(";{}\"'$#\\\n")


# ---- a real nginx in front of two streaming upstreams ---------------------------------------------

async def _sse_upstream(name: str, port: int, hits: dict[str, int]):
    from aiohttp import web

    async def handler(request: web.Request) -> web.StreamResponse:
        hits[name] += 1
        body = await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Upstream": name})
        await resp.prepare(request)
        await resp.write(f"data: first {name} {len(body)}\n\n".encode())
        await asyncio.sleep(0.4)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/completions", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _wait_http(url: str, deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > end:
                raise AssertionError(f"{url} not ready after {deadline_s} s")
            await asyncio.sleep(0.05)


async def test_nginx_round_robin_unbuffered_streams(tmp_path):
    nginx = need_nginx()
    listen, up_a, up_b = 33993, 33994, 33995
    hits = {"a": 0, "b": 0}
    runners = [await _sse_upstream("a", up_a, hits), await _sse_upstream("b", up_b, hits)]
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf("127.0.0.1", listen, [("127.0.0.1", up_a), ("127.0.0.1", up_b)],
                                      str(tmp_path), worker_processes=1, access_log=True))
    proc = await asyncio.create_subprocess_exec(*nginx_command(str(conf), str(tmp_path), nginx=nginx),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _wait_http(f"http://127.0.0.1:{listen}/nginx_health")
        big_prompt = "w17 " * 300_000  # 1.2 MB body: over nginx's default client_max_body_size (1 MB)

        async def one(client: httpx.AsyncClient, i: int) -> tuple[str, float, list[str]]:
            start = time.monotonic()
            first_at = None
            lines: list[str] = []
            payload = {"prompt": big_prompt if i == 0 else "w5 w6", "i": i}
            async with client.stream("POST", f"http://127.0.0.1:{listen}/v1/completions", json=payload) as r:
                assert r.status_code == 200
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        first_at = first_at or time.monotonic() - start
                        lines.append(line[6:])
                return r.headers["X-Upstream"], first_at, lines

        async with httpx.AsyncClient(timeout=30) as client:
            results = await asyncio.gather(*(one(client, i) for i in range(8)))
        for upstream, first_at, lines in results:
            assert lines[-1] == "[DONE]" and lines[0].startswith(f"first {upstream}")
            assert first_at < 0.3, f"first chunk after {first_at:.3f} s: nginx buffered the stream"
        assert hits == {"a": 4, "b": 4}
        assert any(int(lines[0].split()[-1]) > 1 << 20 for _, _, lines in results)  # big body passed
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        for runner in runners:
            await runner.cleanup()
    log = (tmp_path / "access.log").read_text()  # flushed when nginx exits
    assert log.count(f"upstream=127.0.0.1:{up_a}") == 4 and log.count(f"upstream=127.0.0.1:{up_b}") == 4, log


async def test_extra_listen_ports_serve_the_same_endpoint(tmp_path):
    """backend.nginx_listen_ports: the load generator spreads connections over every listen port."""
    nginx = need_nginx()
    listen, extra, up = _free_ports(3)  # not the fixed ports above: other test runs may share the machine
    hits = {"a": 0}
    runner = await _sse_upstream("a", up, hits)
    conf = tmp_path / "nginx.conf"
    text = render_nginx_conf("127.0.0.1", listen, [("127.0.0.1", up)], str(tmp_path), worker_processes=1,
                             extra_listen_ports=[extra])
    assert f"listen 127.0.0.1:{listen} backlog" in text and f"listen 127.0.0.1:{extra} backlog" in text
    conf.write_text(text)
    proc = await asyncio.create_subprocess_exec(*nginx_command(str(conf), str(tmp_path), nginx=nginx),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        for port in (listen, extra):
            await _wait_http(f"http://127.0.0.1:{port}/nginx_health")
            async with httpx.AsyncClient(timeout=30) as client:
                r = await client.post(f"http://127.0.0.1:{port}/v1/completions", json={"prompt": "w1", "i": 0})
                assert r.status_code == 200 and "[DONE]" in r.text
        assert hits == {"a": 2}
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)
        await runner.cleanup()
    with pytest.raises(ConfigError, match="repeat"):
        render_nginx_conf("127.0.0.1", listen, [("127.0.0.1", up)], str(tmp_path), extra_listen_ports=[listen])
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", listen, [("127.0.0.1", up)], str(tmp_path), extra_listen_ports=[70000])


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports
