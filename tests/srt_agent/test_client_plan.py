"""benchmark.client_nodes / client_placement / max_connections_per_pair: placement in the plan,
the allocation size, the dry-run connection-spread check and the coordinator's command."""

import sys

import pytest
from pydantic import ValidationError

from srt_agent.client_plan import (
    client_command,
    client_nodes,
    describe,
    pair_load,
    runs_across_nodes,
    server_addresses,
)
from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigErrors
from srt_agent.job_load import BenchmarkSection
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import load_job_text

CLUSTER = ClusterConfig(model_paths={"m": "/models/m"}, container_runtime="none")


def resolve(bench: str, backend: str = "  use_sglang_router: true\n"):
    text = ("name: t\nmodel:\n  path: m\nresources:\n  prefill_nodes: 1\n  decode_nodes: 2\n  prefill_workers: 1\n"
            "  decode_workers: 2\n  gpus_per_node: 4\nbackend:\n" + backend
            + "benchmark:\n  type: sa-bench\n  isl: 8\n  osl: 8\n" + bench)
    return load_job_text(text, CLUSTER, path="job.yaml")


def plan_of(r, executor="slurm"):
    nodes = [NodeInfo(name=f"gpu-{i}", address=f"10.0.0.{i + 1}") for i in range(r.total_nodes)]
    plan = make_plan(r, PlanInputs(job_id="7", nodes=nodes, log_dir="/l", srtctl_root="/s"))
    return plan.model_copy(update={"executor": executor})


def test_default_is_one_client_on_the_head_node_and_the_plain_loadgen_command():
    r = resolve("  concurrencies: [64]\n")
    plan = plan_of(r)
    assert r.total_nodes == 3 and r.total_gpus == 12
    assert client_nodes(plan) == [("gpu-0", "10.0.0.1")] and not runs_across_nodes(plan)
    cmd = [sys.executable, "-m", "srt_agent.loadgen", "--url", "http://x:1", "--concurrency", "64"]
    assert client_command(plan, r.job, cmd) is cmd


def test_shared_placement_uses_the_first_nodes_and_the_coordinator():
    r = resolve("  concurrencies: [64]\n  client_nodes: 2\n")
    plan = plan_of(r)
    assert r.total_nodes == 3
    assert [n.name for n in plan.nodes if "loadgen" in n.roles] == ["gpu-0", "gpu-1"]
    cmd = client_command(plan, r.job, [sys.executable, "-m", "srt_agent.loadgen", "--url", "u", "--out", "o.json"])
    assert cmd[:3] == [sys.executable, "-m", "srt_agent.loadgen.multinode"]
    args = dict(zip(cmd[3:13:2], cmd[4:13:2]))
    assert args == {"--client-nodes": "gpu-0,gpu-1", "--executor": "slurm", "--bind": "10.0.0.1",
                    "--servers": f"{plan.endpoint.address}:{plan.endpoint.port}",
                    "--max-connections-per-pair": "25000"}
    assert cmd[13:] == ["--url", "u", "--out", "o.json"]
    assert "2 client node(s) (shared): gpu-0, gpu-1" in describe(r.job, plan)


def test_dedicated_placement_adds_nodes_to_the_allocation_but_no_gpus():
    r = resolve("  concurrencies: [64]\n  client_nodes: 2\n  client_placement: dedicated\n")
    plan = plan_of(r)
    assert r.total_nodes == 5 and r.total_gpus == 12 and plan.total_gpus == 12
    roles = {n.name: n.roles for n in plan.nodes}
    assert roles["gpu-3"] == ["loadgen"] and roles["gpu-4"] == ["loadgen"]
    assert all("loadgen" not in roles[f"gpu-{i}"] for i in range(3))
    assert not any(p.node in ("gpu-3", "gpu-4") for p in plan.processes)  # no worker lands there
    nginx = plan_of(resolve("  concurrencies: [64]\n  client_nodes: 2\n  client_placement: dedicated\n",
                            "  engine: dynamo-mocker\n"))
    assert {f.node for f in nginx.frontends} == {"gpu-1", "gpu-2"}  # nor a frontend
    # one dedicated client node still needs the coordinator: it is not the agent's node
    one = plan_of(resolve("  concurrencies: [64]\n  client_placement: dedicated\n"))
    assert client_nodes(one) == [("gpu-3", "10.0.0.4")] and runs_across_nodes(one)


def test_a_concurrency_over_the_per_pair_limit_is_a_dry_run_error_that_says_what_to_change():
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [16, 40]\n  client_nodes: 2\n  max_connections_per_pair: 8\n")
    text = str(e.value)
    assert "job.yaml" in text and "benchmark.concurrencies" in text
    assert "concurrency 40 puts 20 connections on one (client node, server address) pair" in text
    assert "client_nodes: 5 or more" in text and "the sglang router" in text
    resolve("  concurrencies: [16, 40]\n  client_nodes: 3\n  max_connections_per_pair: 14\n")  # 40/3 -> 14: fits
    assert pair_load(32_768, 1, 1) == 32_768 and pair_load(32_768, 2, 1) == 16_384 and pair_load(10, 3, 2) == 2


def test_the_default_limit_rejects_32768_on_one_node_and_names_nginx():
    backend = "  use_sglang_router: false\n  engine: dynamo-mocker\n"
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [21504, 32768]\n", backend)
    assert "concurrency 32768" in str(e.value) and "nginx's 1 listen port(s)" in str(e.value)
    assert "client_nodes: 2 or more" in str(e.value) and "backend.nginx_listen_ports: 2 or more" in str(e.value)
    resolve("  concurrencies: [21504, 32768]\n  client_nodes: 2\n", backend)


def test_nginx_listen_ports_are_server_addresses_the_client_spreads_over():
    backend = "  use_sglang_router: false\n  engine: dynamo-mocker\n  nginx_listen_ports: 2\n"
    r = resolve("  concurrencies: [21504, 32768]\n", backend)  # one client node, two listen ports: fits
    plan = plan_of(r)
    ep = plan.endpoint
    assert ep.kind == "nginx" and len(ep.extra_ports) == 1 and ep.extra_ports[0] != ep.port
    assert server_addresses(plan) == [(ep.address, ep.port), (ep.address, ep.extra_ports[0])]
    owners = [(p.address, p.port) for p in plan.processes if p.port]
    assert (ep.address, ep.extra_ports[0]) not in owners  # a port of its own in the job's block
    assert runs_across_nodes(plan)  # two server addresses: the coordinator, on the head node
    assert client_nodes(plan) == [("gpu-0", "10.0.0.1")]
    assert "at most 16384 per pair" in describe(r.job, plan)
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [4]\n", "  use_sglang_router: true\n  nginx_listen_ports: 2\n")
    assert "backend.nginx_listen_ports" in str(e.value) and "only applies" in str(e.value)


def test_shared_placement_needs_that_many_nodes_and_keys_are_strict():
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [4]\n  client_nodes: 4\n")
    assert "client_nodes 4 is more than the job's 3 node(s)" in str(e.value)
    assert "client_placement: dedicated" in str(e.value)
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [4]\n  client_placement: own\n")
    assert "client_placement" in str(e.value)
    with pytest.raises(ConfigErrors) as e:
        resolve("  concurrencies: [4]\n  client_node: 2\n")
    assert "client_nodes" in str(e.value)  # did you mean


@pytest.mark.parametrize("key,value", [("client_nodes", 2), ("client_placement", "dedicated"),
                                       ("max_connections_per_pair", 100)])
def test_client_keys_on_a_benchmark_without_the_load_generator_are_refused(key, value):
    with pytest.raises(ValidationError, match=f"{key} only apply to benchmark type sa-bench"):
        BenchmarkSection(type="custom", command="true", **{key: value})
    assert getattr(BenchmarkSection(type="sa-bench", isl=8, osl=8, concurrencies=[1], **{key: value}), key) == value
