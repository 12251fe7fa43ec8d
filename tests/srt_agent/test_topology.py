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


def test_explicit_gpus_per_worker():
    from srt_agent.topology import role_layout, shared_layout

    lay = role_layout(1, 1, 4, 2)
    assert (lay.workers_per_node, lay.gpus_per_worker) == (1, 2)
    assert role_layout(2, 3, 4, 2).workers_per_node == 2
    assert role_layout(2, 1, 4, 8).nodes_per_worker == 2
    with pytest.raises(ValueError, match="do not fit"):
        role_layout(1, 3, 4, 2)
    with pytest.raises(ValueError, match="need 2 node"):
        role_layout(3, 1, 4, 8)
    shared = shared_layout(lay, "prefill", 1, 4, None)
    assert (shared.gpu_offset, shared.gpus_per_worker, shared.shares_nodes_of) == (2, 2, "prefill")
    with pytest.raises(ValueError, match="leave free"):
        shared_layout(lay, "prefill", 2, 4, None)
    with pytest.raises(ValueError, match="spans 2 nodes"):
        shared_layout(role_layout(2, 1, 4), "prefill", 1, 4, None)
