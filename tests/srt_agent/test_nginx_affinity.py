"""nginx session affinity (backend.nginx_session_affinity_header): golden file, `nginx -t`, hostile
header names, and a real nginx that keeps one session on one upstream and spreads the rest."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest
from test_nginx import UPSTREAMS, _sse_upstream, _wait_http, check_golden, need_nginx

from srt_agent.errors import ConfigError
from srt_agent.nginx import nginx_command, nginx_test_command, render_nginx_conf

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "nginx-affinity.conf"


def test_golden_conf_with_affinity():
    check_golden(GOLDEN, render_nginx_conf("10.0.0.1", 8000, UPSTREAMS, "/srv/srt/logs/nginx",
                                           affinity_header="X-Dynamo-Session-ID"))


def test_without_the_header_the_conf_is_unchanged():
    plain = render_nginx_conf("10.0.0.1", 8000, UPSTREAMS, "/r")
    assert "hash " not in plain and "map " not in plain
    assert render_nginx_conf("10.0.0.1", 8000, UPSTREAMS, "/r", affinity_header=None) == plain


@pytest.mark.parametrize("header", ["", "X Session", "x;y", "x$y", "x{y", "-x", "x\ny", "a" * 65, 3, "x_y"])
def test_hostile_header_names_rejected(header):
    with pytest.raises(ConfigError):
        render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/r", affinity_header=header)


def test_nginx_accepts_it(tmp_path):
    nginx = need_nginx()
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf("127.0.0.1", 33980, [("127.0.0.1", 33981), ("127.0.0.1", 33982)],
                                      str(tmp_path), affinity_header="X-Correlation-ID"))
    proc = subprocess.run(nginx_test_command(str(conf), str(tmp_path), nginx=nginx), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr + (tmp_path / "error.log").read_text()


async def test_one_session_one_upstream_the_rest_spread(tmp_path):
    nginx = need_nginx()
    listen, up_a, up_b = 33983, 33984, 33985
    hits = {"a": 0, "b": 0}
    runners = [await _sse_upstream("a", up_a, hits), await _sse_upstream("b", up_b, hits)]
    conf = tmp_path / "nginx.conf"
    conf.write_text(render_nginx_conf("127.0.0.1", listen, [("127.0.0.1", up_a), ("127.0.0.1", up_b)],
                                      str(tmp_path), worker_processes=1, affinity_header="X-Session"))
    proc = await asyncio.create_subprocess_exec(*nginx_command(str(conf), str(tmp_path), nginx=nginx),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await _wait_http(f"http://127.0.0.1:{listen}/nginx_health")
        url = f"http://127.0.0.1:{listen}/v1/completions"
        async with httpx.AsyncClient(timeout=20) as client:
            async def upstream(headers: dict) -> str:
                r = await client.post(url, content=b"{}", headers=headers)
                assert r.status_code == 200
                return r.headers["x-upstream"]

            per_session = {s: {await upstream({"X-Session": s}) for _ in range(4)} for s in map(str, range(12))}
            assert all(len(u) == 1 for u in per_session.values()), per_session
            assert {u for us in per_session.values() for u in us} == {"a", "b"}  # sessions spread over both
            anonymous = await asyncio.gather(*(upstream({}) for _ in range(24)))
            assert set(anonymous) == {"a", "b"}
    finally:
        proc.terminate()
        await proc.wait()
        for r in runners:
            await r.cleanup()
