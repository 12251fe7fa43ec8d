"""How a role's nodes and workers fit together; shared by the config checks and the plan."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoleLayout:
    nodes: int
    workers: int
    nodes_per_worker: int   # >1: one worker spans several nodes (leader + followers)
    workers_per_node: int   # >1: several workers share a node, splitting its GPUs
    gpus_per_worker: int
    shares_nodes_of: str | None = None  # decode_nodes: 0 -> placed on the prefill nodes' free GPUs
    gpu_offset: int = 0                 # first GPU on each node this role uses

    def gpus_used(self, gpus_per_node: int) -> int:
        """GPUs this role occupies: whole nodes, unless its workers leave some free (or share nodes)."""
        if self.shares_nodes_of or self.workers_per_node * self.gpus_per_worker < gpus_per_node:
            return self.workers * self.gpus_per_worker
        return self.nodes * gpus_per_node

    @property
    def gpus_per_worker_per_node(self) -> int:
        return self.gpus_per_worker // self.nodes_per_worker


def role_layout(nodes: int, workers: int, gpus_per_node: int, gpus_per_worker: int | None = None) -> RoleLayout:
    """Lay out `workers` over `nodes`; raises ValueError with the fix when they do not divide.

    `gpus_per_worker` (resources.gpus_per_prefill/decode/agg) fixes each worker's GPU count instead
    of deriving it from nodes / workers: workers then fill each node's GPUs in order."""
    if gpus_per_worker is not None and nodes >= 1 and workers >= 1:
        return _explicit_layout(nodes, workers, gpus_per_node, gpus_per_worker)
    if nodes < 1 or workers < 1:
        raise ValueError("nodes and workers must be at least 1")
    if nodes >= workers:
        if nodes % workers:
            raise ValueError(
                f"{nodes} nodes cannot be split evenly among {workers} workers; "
                f"use a node count that is a multiple of {workers}")
        npw = nodes // workers
        return RoleLayout(nodes, workers, npw, 1, npw * gpus_per_node)
    if workers % nodes:
        raise ValueError(
            f"{workers} workers cannot be spread evenly over {nodes} nodes; "
            f"use a worker count that is a multiple of {nodes}")
    wpn = workers // nodes
    if gpus_per_node % wpn:
        raise ValueError(
            f"{wpn} workers per node cannot split {gpus_per_node} GPUs evenly; "
            f"use a worker count that divides the GPUs per node")
    return RoleLayout(nodes, workers, 1, wpn, gpus_per_node // wpn)


def _explicit_layout(nodes: int, workers: int, gpus_per_node: int, gpw: int) -> RoleLayout:
    if gpw >= gpus_per_node:
        if gpw % gpus_per_node:
            raise ValueError(f"{gpw} GPUs per worker spanning nodes must be a multiple of the {gpus_per_node} GPUs per node")
        npw = gpw // gpus_per_node
        if nodes != workers * npw:
            raise ValueError(f"{workers} worker(s) x {gpw} GPUs need {workers * npw} node(s), not {nodes}")
        return RoleLayout(nodes, workers, npw, 1, gpw)
    wpn = -(-workers // nodes)
    if wpn * gpw > gpus_per_node:
        raise ValueError(f"{workers} worker(s) x {gpw} GPUs do not fit on {nodes} node(s) x {gpus_per_node} GPUs")
    return RoleLayout(nodes, workers, 1, wpn, gpw)


def shared_layout(host: RoleLayout, role_of_host: str, workers: int, gpus_per_node: int,
                  gpus_per_worker: int | None) -> RoleLayout:
    """Workers placed on another role's nodes, in the GPUs that role leaves free (decode_nodes: 0)."""
    if host.nodes_per_worker > 1:
        raise ValueError(f"decode_nodes: 0 shares the {role_of_host} nodes, but each {role_of_host} worker "
                         f"spans {host.nodes_per_worker} nodes and leaves no GPU free")
    gpw = gpus_per_worker or host.gpus_per_worker
    offset = host.workers_per_node * host.gpus_per_worker
    wpn = -(-workers // host.nodes)
    if offset + wpn * gpw > gpus_per_node:
        raise ValueError(f"{workers} decode worker(s) x {gpw} GPUs do not fit in the {gpus_per_node - offset} GPU(s) "
                         f"per node the {role_of_host} workers leave free on {host.nodes} node(s)")
    return RoleLayout(host.nodes, workers, 1, wpn, gpw, shares_nodes_of=role_of_host, gpu_offset=offset)
