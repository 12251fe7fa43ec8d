"""A recipe's tensor-parallel size against the GPUs srt-slurm gives each worker
(srt_agent/incumbent/layout.py): below them it becomes gpus_per_<role>, above them it is refused,
saying that srt-slurm would start SGLang with more ranks than the worker's GPUs too."""

from __future__ import annotations

import copy

import pytest
import yaml

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.incumbent import convert_document
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import resolve_job
from srt_agent.yaml_source import parse_yaml

from .test_convert import BASE

CLUSTER = ClusterConfig(model_paths={"m": "/models/m"}, containers={"c": "/c.sqsh"})


def _override_file(decode_nodes, decode_workers, tp=8):
    """GLM-5's shape: base decode tp 8 on 4-GPU nodes, a zip over the decode node and worker counts."""
    base = copy.deepcopy(BASE)
    del base["resources"]["decode_nodes"], base["resources"]["decode_workers"]  # as in GLM-5: the variants set them
    base["backend"] = {"sglang_config": {"prefill": {"tensor-parallel-size": 4},
                                         "decode": {"tensor-parallel-size": tp, "expert-parallel-size": 1}}}
    return {"base": base, "zip_override_lowlat": {"resources": {"decode_nodes": decode_nodes,
                                                                "decode_workers": decode_workers}}}


def _errors(data) -> tuple[str, list[ConfigError]]:
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(ConfigError) as exc:
        convert_document(parse_yaml(text, "recipe.yaml"))
    return text, (exc.value.errors if isinstance(exc.value, ConfigErrors) else [exc.value])


def test_a_tensor_parallel_size_above_the_workers_gpus_is_refused_as_srt_slurm_would_fail_it():
    text, errors = _errors(_override_file([2, 3, 3], [2, 3, 3]))
    assert len(errors) == 2  # one per distinct variant: the two identical ones report once
    for err, (nodes, workers) in zip(errors, [(2, 2), (3, 3)]):
        assert err.key == "backend.sglang_config.decode.tensor-parallel-size"
        assert text.splitlines()[err.line - 1].strip() == "tensor-parallel-size: 8"
        assert f"decode workers of 4 GPUs each (decode_nodes {nodes} x gpus_per_node 4 / decode_workers {workers}" \
            in err.message
        assert "not from its tensor-parallel size" in err.message
        assert "without --nnodes, so SGLang would start 8 ranks on one node where the worker has 4 GPUs" in err.message
        assert "does not run under srt-slurm either" in err.message
        assert err.hint.startswith("set tensor-parallel-size: 4, or give each worker 2 nodes "
                                   f"(decode_nodes: {2 * workers} for decode_workers: {workers})")


def test_a_multi_node_worker_with_too_large_a_size_names_its_nnodes():
    data = copy.deepcopy(BASE)
    data["resources"].update(prefill_nodes=2)
    data["backend"] = {"sglang_config": {"prefill": {"tp-size": 16}}}
    _, (err,) = _errors(data)
    assert err.key == "backend.sglang_config.prefill.tp-size"
    assert "with --nnodes 2, so SGLang would start 8 ranks on each 4-GPU node" in err.message
    assert "prefill_nodes: 4 for prefill_workers: 1" in err.hint


def test_the_suggested_fix_runs_each_worker_on_two_nodes():
    """The refusal's fix (decode_nodes = 2 x decode_workers) converts, and srtctl starts each
    tp-8 decode worker on two 4-GPU nodes with --nnodes 2 / --node-rank."""
    data = _override_file([4], [2])
    conv = convert_document(parse_yaml(yaml.safe_dump(data, sort_keys=False), "recipe.yaml"))
    assert "gpus_per_decode" not in conv.data["resources"]
    resolved = resolve_job(conv.document(), CLUSTER)
    assert resolved.layouts["decode"].gpus_per_worker == 8
    nodes = [NodeInfo(name=f"gpu-{i}", address=f"10.0.0.{i + 1}") for i in range(resolved.total_nodes)]
    plan = make_plan(resolved, PlanInputs(job_id="1", nodes=nodes, log_dir="/logs/1", srtctl_root="/opt/srt",
                                          host_python="/venv/bin/python"))
    decode = [w for w in plan.workers if w.role == "decode"]
    assert [w.nodes for w in decode] == [["gpu-1", "gpu-2"], ["gpu-3", "gpu-4"]]
    for w in decode:
        for rank, name in enumerate(w.processes):
            cmd = plan.process(name).command
            assert cmd[cmd.index("--nnodes") + 1] == "2" and cmd[cmd.index("--node-rank") + 1] == str(rank)
            assert cmd[cmd.index("--tp-size") + 1] == "8"
