"""nginx's open-file limit: soft raised to hard, nginx sized from what was granted, warning when short."""

from __future__ import annotations

import resource
import subprocess
import sys

from srt_agent.nginx import render_nginx_conf
from srt_agent.nofile import needed_connections, raise_soft_limit, size_nginx


def test_soft_limit_is_raised_to_the_hard_limit_in_a_child():
    # a child with a low soft limit: raise_soft_limit must lift it to the hard limit
    code = ("import resource; from srt_agent.nofile import raise_soft_limit; "
            "s, h = resource.getrlimit(resource.RLIMIT_NOFILE); resource.setrlimit(resource.RLIMIT_NOFILE, (256, h)); "
            "print(*raise_soft_limit())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    before, soft, hard = map(int, out)
    assert before == 256 and soft == hard >= 256
    assert raise_soft_limit()[1] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def test_nginx_is_sized_from_the_granted_limit_and_warns_when_short():
    ok = size_nginx(1024, 524288, 524288, 4096)
    assert ok.worker_rlimit_nofile == 524288 and ok.worker_connections == 65536 and ok.warning is None
    short = size_nginx(1024, 1024, 1024, 4096)
    assert short.worker_connections == 1024 - 64 and short.worker_rlimit_nofile == 1024
    assert short.needed_connections == needed_connections(4096) == 2 * 4096 + 64
    assert "below the configured concurrency 4096" in short.warning and "ulimit -Hn" in short.warning
    assert size_nginx(1024, 1024, 1024, None).warning is None
    conf = render_nginx_conf("127.0.0.1", 8000, [("127.0.0.1", 8001)], "/tmp/n",
                             worker_connections=short.worker_connections,
                             worker_rlimit_nofile=short.worker_rlimit_nofile)
    assert "worker_rlimit_nofile 1024;" in conf and "worker_connections 960;" in conf
