"""benchmark.client_nodes on the local SLURM cluster: a point whose concurrency needs more than one
node's share of connections (max_connections_per_pair lowered to 4 for the test) runs from two
client nodes (dedicated ones, or the job's own) in one srun step, one start instant, one merged
result; node 2's clock is skewed by 12.5 s (SRT_LOADGEN_CLOCK_SKEW_S) and its measured offset
must cancel that."""

from __future__ import annotations

import json

import pytest

try:
    from test_apply_slurm import SlurmRun, model_dir  # noqa: F401 - model_dir is a fixture
except ImportError:  # pragma: no cover
    from tests.integration.test_apply_slurm import SlurmRun, model_dir  # noqa: F401

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.parametrize("placement,clients", [("dedicated", ["node3", "node4"]), ("shared", ["node1", "node2"])])
def test_two_client_nodes_one_start_one_merged_result(local_cluster, tmp_path, model_dir, monkeypatch,
                                                      placement, clients):
    monkeypatch.setenv("SRT_LOADGEN_CLOCK_SKEW_S", "0,12.5")
    run = SlurmRun(tmp_path, local_cluster, model_dir)
    job = run.job({"type": "sa-bench", "isl": 16, "osl": 8, "concurrencies": [6], "prompt_multiplier": 2,
                   "warmup_multiplier": 1, "client_nodes": 2, "client_placement": placement,
                   "max_connections_per_pair": 4},
                  name="slurm-clients", resources={"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1,
                                                   "decode_workers": 1})
    res = run.apply(job)
    assert res.returncode == 0, res.stderr
    run_dir = run.run_dir(res.stdout)
    status = run.wait_status(run_dir, lambda s: s["state"] in ("succeeded", "failed"))
    assert status["state"] == "succeeded", status["failure"]
    plan = json.loads((run_dir / "plan.json").read_text())
    assert [n["name"] for n in plan["nodes"] if "loadgen" in n["roles"]] == clients
    if placement == "dedicated":  # nodes added to the allocation, only for the client
        assert {n["name"]: n["roles"] for n in plan["nodes"]}["node3"] == ["loadgen"]
        assert not any(p["node"] in clients for p in plan["processes"])
    else:
        assert len(plan["nodes"]) == 2
    log = (run_dir / "logs" / "benchmark.log").read_text()
    assert "srt_agent.loadgen.multinode" in log and "--job-name=srt-loadgen" in log, log[-3000:]
    r = json.loads((run_dir / "results" / "result_isl16_osl8_c6.json").read_text())
    assert (r["completed"], r["failed"], r["max_concurrency"]) == (12, 0, 6)
    assert r["total_output_tokens"] == 12 * 8
    nodes = r["client_nodes"]
    assert [(n["node"], n["concurrency"], n["num_requests"]) for n in nodes] == [(clients[0], 3, 6), (clients[1], 3, 6)]
    assert nodes[0]["clock_offset_s"] == pytest.approx(0.0, abs=0.05)
    assert nodes[1]["clock_offset_s"] == pytest.approx(-12.5, abs=0.05)
    # the skew does not reach the merged latencies: simulated decode 5 ms/step, 8 tokens
    assert 0 < r["median_ttft_ms"] < 2000 and 0 < r["median_e2el_ms"] < 5000 and 0 < r["duration"] < 60
    assert all(0 < n["median_ttft_ms"] < 2000 for n in nodes)
    assert r["measured_end_unix"] - r["measured_start_unix"] < 60
