"""The worker processes' lives (runner.worker_processes): an error inside stops every worker at
once with SIGTERM, rather than waiting out a grace per worker and then killing it."""

import signal

import pytest

from srt_agent.loadgen import LoadConfig
from srt_agent.loadgen.prompts import build_workload
from srt_agent.loadgen.runner import worker_processes, worker_spec


def _specs(server, n):
    config = LoadConfig(url=server.url, model="ok", isl=8, osl=2, concurrency=n, num_prompts=n)
    workload = build_workload(list(range(n)), 8, 2, seed=0)
    return [worker_spec(config, i, "127.0.0.1", server.port, "/v1/completions", 1, [], [i], workload)
            for i in range(n)]


def test_an_error_inside_stops_every_worker_with_sigterm(sse_server):
    with pytest.raises(RuntimeError, match="boom"):
        with worker_processes(_specs(sse_server, 3)) as (_pipes, procs):
            raise RuntimeError("boom")
    # before: each waited 5 s in turn and was then SIGKILLed (15 s for three)
    assert [p.returncode for p in procs] == [-signal.SIGTERM] * 3

