"""A health deadline names the health.* key that governs the processes that missed it."""

from __future__ import annotations

import anyio
import pytest

from srt_agent.agent.health import timeout_key, wait_processes_healthy
from srt_agent.agent.status import StatusWriter
from srt_agent.errors import HealthTimeout
from srt_agent.plan import ProcessSpec


def proc(kind: str, port: int) -> ProcessSpec:
    return ProcessSpec(name=f"{kind}-0", kind=kind, node="n0", address="127.0.0.1", command=["x"], port=port,
                       health_path="/health")


@pytest.mark.parametrize("kinds,key", [(["nats", "etcd"], "health.infra_timeout_s"),
                                       (["worker"], "health.worker_timeout_s"),
                                       (["frontend"], "health.frontend_timeout_s"),
                                       (["router"], "health.frontend_timeout_s"),
                                       (["nginx"], "health.frontend_timeout_s")])
def test_timeout_key_per_kind(kinds, key):
    assert timeout_key([proc(k, 1) for k in kinds]) == key


@pytest.mark.parametrize("kind,key", [("etcd", "health.infra_timeout_s"), ("frontend", "health.frontend_timeout_s")])
def test_the_deadline_message_names_the_key(tmp_path, free_port, kind, key):
    status = StatusWriter(tmp_path, job_id="1", name="t", executor="local")
    with pytest.raises(HealthTimeout) as err:
        anyio.run(lambda: wait_processes_healthy([proc(kind, free_port)], status, deadline_s=0, what=kind))
    assert f"(raise {key} if startup is slow)" in str(err.value) and "worker_timeout_s" not in str(err.value)
