"""role_layout: workers spanning nodes, several workers per node, and the errors in between."""

import pytest

from srt_agent.topology import role_layout


@pytest.mark.parametrize("nodes, workers, gpn, npw, wpn, gpw", [
    (1, 1, 4, 1, 1, 4),
    (2, 1, 4, 2, 1, 8),      # the seed decode worker: one worker over two nodes
    (12, 1, 4, 12, 1, 48),   # TP=DP=EP=48 over 12 x 4 GPUs
    (4, 2, 8, 2, 1, 16),
    (1, 2, 4, 1, 2, 2),      # two workers share a node
    (2, 8, 8, 1, 4, 2),
    (3, 3, 4, 1, 1, 4),
])
def test_layouts(nodes, workers, gpn, npw, wpn, gpw):
    lay = role_layout(nodes, workers, gpn)
    assert (lay.nodes, lay.workers) == (nodes, workers)
    assert (lay.nodes_per_worker, lay.workers_per_node, lay.gpus_per_worker) == (npw, wpn, gpw)
    assert lay.gpus_per_worker * workers == nodes * gpn  # every GPU used exactly once
    assert lay.gpus_per_worker_per_node == gpw // npw


@pytest.mark.parametrize("nodes, workers, gpn, needle", [
    (3, 2, 4, "3 nodes cannot be split evenly among 2 workers"),
    (2, 3, 4, "3 workers cannot be spread evenly over 2 nodes"),
    (1, 3, 4, "3 workers per node cannot split 4 GPUs evenly"),
    (0, 1, 4, "at least 1"),
    (1, 0, 4, "at least 1"),
])
def test_bad_layouts(nodes, workers, gpn, needle):
    with pytest.raises(ValueError) as info:
        role_layout(nodes, workers, gpn)
    assert needle in str(info.value)
