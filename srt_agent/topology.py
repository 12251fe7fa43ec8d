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

    @property
    def gpus_per_worker_per_node(self) -> int:
        return self.gpus_per_worker // self.nodes_per_worker


def role_layout(nodes: int, workers: int, gpus_per_node: int) -> RoleLayout:
    """Lay out `workers` over `nodes`; raises ValueError with the fix when they do not divide."""
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
