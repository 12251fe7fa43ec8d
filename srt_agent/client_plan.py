"""Where the load generator runs and how its connections spread: `benchmark.client_nodes`,
`benchmark.client_placement`, `benchmark.max_connections_per_pair`. Pure: no I/O.

One client address can hold only about 28k connections to one server ip:port (the ephemeral port
range), so every point's connections are split evenly over the client nodes, and each node's share
evenly over every address the endpoint offers. A concurrency that would put more than
max_connections_per_pair connections on one (client node, server address) pair is a config error
at dry-run that says what to change. docs/benchmarking.md, "Across nodes".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .job_config import JobConfig
    from .plan import Plan
    from .yaml_source import YamlDocument

CLIENT_ROLE = "loadgen"  # the role the plan gives each client node (plan.json nodes[].roles)


def share(n: int, k: int) -> list[int]:
    """n split into k near-equal integer parts, larger parts first."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def extra_nodes(job: JobConfig) -> int:
    """Nodes added to the allocation for the client (placement dedicated)."""
    b = job.benchmark
    return b.client_nodes if b.type == "sa-bench" and b.client_placement == "dedicated" else 0


def server_address_count(job: JobConfig, worker_nodes: int) -> int:
    """Addresses (ip:port) the endpoint offers: nginx's listen ports, the single frontend, or the router."""
    return job.backend.nginx_listen_ports if _nginx(job, worker_nodes) else 1


def _nginx(job: JobConfig, worker_nodes: int) -> bool:
    """The plan's rule: nginx in front of several frontends (disaggregated, more than one node)."""
    be = job.backend
    return (not be.use_sglang_router and job.mode == "disaggregated" and be.enable_multiple_frontends
            and worker_nodes > 1)


def pair_load(concurrency: int, client_nodes: int, servers: int) -> int:
    """Most connections any (client node, server address) pair carries at this concurrency."""
    per_node = math.ceil(concurrency / client_nodes)
    return math.ceil(per_node / servers)


def nodes_needed(concurrency: int, servers: int, limit: int) -> int:
    return math.ceil(concurrency / (servers * limit))


def client_node_names(job: JobConfig, node_names: Sequence[str], worker_nodes: int) -> list[str]:
    """The client nodes among the plan's nodes: the first client_nodes of the job's nodes (shared,
    the head node first, where the agent runs), or the client_nodes nodes after the workers'
    (dedicated). Empty when the job runs no sa-bench."""
    b = job.benchmark
    if b.type != "sa-bench":
        return []
    if b.client_placement == "dedicated":
        return list(node_names[worker_nodes: worker_nodes + b.client_nodes])
    return list(node_names[: b.client_nodes])


def check_clients(job: JobConfig, doc: YamlDocument, worker_nodes: int) -> list[ConfigError]:
    """The dry-run checks: enough nodes for shared placement, no pair over its connection limit."""
    b = job.benchmark
    if b.type != "sa-bench":
        return []
    errors: list[ConfigError] = []
    if b.client_placement == "shared" and b.client_nodes > worker_nodes:
        errors.append(ConfigError(
            f"client_nodes {b.client_nodes} is more than the job's {worker_nodes} node(s)", file=doc.path,
            line=doc.line_of(("benchmark", "client_nodes")), key="benchmark.client_nodes", value=b.client_nodes,
            hint=f"set client_placement: dedicated (adds {b.client_nodes} nodes to the allocation), "
                 f"or client_nodes: {worker_nodes} or fewer"))
    if job.backend.nginx_listen_ports > 1 and not _nginx(job, worker_nodes):
        errors.append(ConfigError(
            "nginx_listen_ports only applies in front of several Dynamo frontends (nginx)", file=doc.path,
            line=doc.line_of(("backend", "nginx_listen_ports")), key="backend.nginx_listen_ports",
            value=job.backend.nginx_listen_ports,
            hint="remove it: this endpoint is one address (the router or one frontend); add client_nodes instead"))
    servers = server_address_count(job, worker_nodes)
    limit = b.max_connections_per_pair
    for c in b.concurrencies or []:
        load = pair_load(c, b.client_nodes, servers)
        if load <= limit:
            continue
        need = nodes_needed(c, servers, limit)
        more_ports = (f", or backend.nginx_listen_ports: {nodes_needed(c, b.client_nodes, limit)} or more"
                      if _nginx(job, worker_nodes) else "")
        errors.append(ConfigError(
            f"concurrency {c} puts {load} connections on one (client node, server address) pair: "
            f"{b.client_nodes} client node(s) x {servers} server address(es) "
            f"({_endpoint_words(job, worker_nodes)}), at most {limit} each (max_connections_per_pair; one client "
            "address holds ~28k connections to one ip:port)", file=doc.path,
            line=doc.line_of(("benchmark", "concurrencies")), key="benchmark.concurrencies", value=c,
            hint=f"set benchmark.client_nodes: {need} or more (client_placement: dedicated adds them to the "
                 f"allocation if the job has fewer nodes){more_ports}, or lower the concurrency"))
        break  # the largest point needs the most; one error says what to change
    return errors


def _endpoint_words(job: JobConfig, worker_nodes: int) -> str:
    be = job.backend
    if be.use_sglang_router:
        return "the sglang router"
    if _nginx(job, worker_nodes):
        return f"nginx's {be.nginx_listen_ports} listen port(s)"
    return "the Dynamo frontend"


def server_addresses(plan: Plan) -> list[tuple[str, int]]:
    """Every address (host, port) the endpoint offers, the order connections are spread in."""
    ep = plan.endpoint
    return [(ep.address, port) for port in [ep.port, *ep.extra_ports]]


def client_nodes(plan: Plan) -> list[tuple[str, str]]:
    """(name, address) of the plan's client nodes, in plan order."""
    return [(n.name, n.address) for n in plan.nodes if CLIENT_ROLE in n.roles]


def runs_across_nodes(plan: Plan) -> bool:
    """True when a point needs the multi-node client: several client nodes, a client node other
    than the head node (where the agent runs), or several server addresses."""
    nodes = client_nodes(plan)
    return len(nodes) > 1 or (bool(nodes) and nodes[0][0] != plan.head_node) or len(server_addresses(plan)) > 1


def describe(job: JobConfig, plan: Plan) -> str | None:
    """One dry-run line: where the client runs and how connections spread; None without sa-bench."""
    b = job.benchmark
    nodes = client_nodes(plan)
    if b.type != "sa-bench" or not nodes:
        return None
    servers = server_addresses(plan)
    top = max(b.concurrencies or [1])
    return (f"load generator: {len(nodes)} client node(s) ({b.client_placement}): {', '.join(n for n, _ in nodes)}; "
            f"connections spread over {len(servers)} server address(es) "
            f"{', '.join(f'{h}:{p}' for h, p in servers)}; at concurrency {top} at most "
            f"{pair_load(top, len(nodes), len(servers))} per pair (limit {b.max_connections_per_pair})")


def client_command(plan: Plan, job: JobConfig, loadgen_cmd: list[str]) -> list[str]:
    """The argv of one point: `loadgen_cmd` (python -m srt_agent.loadgen ...) as is when the client
    runs on the agent's node alone, else the multi-node coordinator with the same arguments."""
    if not runs_across_nodes(plan):
        return loadgen_cmd
    head = next(n.address for n in plan.nodes if n.name == plan.head_node)
    servers = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in server_addresses(plan))
    return [loadgen_cmd[0], "-m", "srt_agent.loadgen.multinode",
            "--client-nodes", ",".join(name for name, _ in client_nodes(plan)),
            "--executor", plan.executor or "slurm", "--bind", head, "--servers", servers,
            "--max-connections-per-pair", str(job.benchmark.max_connections_per_pair), *loadgen_cmd[3:]]
