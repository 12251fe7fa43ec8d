"""What dry-run and apply print: commands.txt and the rich summary."""

import shlex
from pathlib import Path

from launcher.summary import commands_text, print_summary
from srt_agent.cluster_config import ClusterConfig
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import load_job, load_job_text

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ClusterConfig(default_account="acct", model_paths={"deepseek-r1": "/models/DeepSeek-R1",
                                                             "llama-70b": "/models/Llama-3-70B"},
                        containers={"latest": "/c/latest.sqsh", "stable": "/c/stable.sqsh"})


def plan_for(resolved):
    nodes = [NodeInfo(f"n{i}", f"10.0.0.{i + 1}") for i in range(resolved.total_nodes)]
    return make_plan(resolved, PlanInputs(job_id="12", nodes=nodes, log_dir="/logs/12_x", srtctl_root="/srt"))


def test_commands_text_round_trips_through_the_shell_and_redacts():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    plan = plan_for(r)
    worker = plan.process("prefill-0")
    worker.env["HF_TOKEN"] = "hf_secret_abcdef"
    worker.command.append("--weird=a b'c;$(x)")
    text = commands_text(plan)
    assert "hf_secret_abcdef" not in text and "export HF_TOKEN='***'" in text
    blocks = text.strip().split("\n\n")
    assert len(blocks) == len(plan.processes)
    for block, proc in zip(blocks, plan.processes):
        lines = block.splitlines()
        assert lines[0].startswith(f"# {proc.name}  ({proc.kind}") and f"on {proc.node}" in lines[0]
        assert shlex.split(lines[-1]) == proc.command
    assert "GPUs 0,1,2,3" in blocks[2] and "[container]" in blocks[2]


def test_summary_disaggregated(capsys):
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    print_summary(r, plan_for(r), title="Dry run")
    out = capsys.readouterr().out
    assert "Dry run: my-benchmark  (disaggregated, engine sglang)" in out
    assert "account=acct" in out and "nodes=3 x 4 GPUs" in out
    assert "decode-0" in out and "n1,n2" in out
    assert "endpoint: nginx on n0" in out and "10 Dynamo frontend(s) on n1, n2" in out
    assert "infra: NATS nats://10.0.0.1:" in out
    assert "benchmark: sa-bench isl=1024 osl=1024 concurrencies=[256, 512]" in out
    assert "ports: block starting at" in out


def test_summary_router_and_profiling(capsys):
    r = load_job(ROOT / "configs" / "agg-example.yaml", CLUSTER)
    print_summary(r, plan_for(r), title="Submitted")
    out = capsys.readouterr().out
    assert "endpoint: router on n0" in out and "Dynamo frontend" not in out and "infra:" not in out
    text = (ROOT / "configs" / "profiling-example.yaml").read_text()
    p = load_job_text(text, CLUSTER)
    print_summary(p, plan_for(p), title="Dry run")
    assert "profiling: torch isl=1024 osl=128 concurrency=24 steps 0..50" in capsys.readouterr().out


def test_summary_manual(capsys):
    text = "name: m\nmodel:\n  path: deepseek-r1\n  container: latest\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
    r = load_job_text(text, CLUSTER)
    print_summary(r, plan_for(r), title="Dry run")
    assert "benchmark: manual (serve until the job ends)" in capsys.readouterr().out


def test_commands_text_shows_the_srun_step_before_the_script():
    from srt_agent.srun import with_launch_commands

    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    plan = with_launch_commands(plan_for(r), executor="slurm", run_dir="/logs/12_x")
    blocks = commands_text(plan, preamble="# a note\n").strip().split("\n\n")
    assert blocks[0] == "# a note" and len(blocks) == len(plan.processes) + 1
    for block, proc in zip(blocks[1:], plan.processes):
        lines = block.splitlines()
        assert lines[1] == "# started by:" and shlex.split(lines[2]) == proc.launch
        assert lines[3] == f"# launch/{proc.name}.sh runs:" and shlex.split(lines[-1]) == proc.command


def test_summary_trace_replay(capsys, tmp_path):
    trace = tmp_path / "t.jsonl"
    text = ("name: t\nmodel:\n  path: deepseek-r1\n  container: latest\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
            f"benchmark:\n  type: trace-replay\n  trace_file: {trace}\n  ttft_threshold_ms: 2000\n")
    r = load_job_text(text, CLUSTER)
    print_summary(r, plan_for(r), title="Dry run")
    out = "".join(capsys.readouterr().out.split())  # rich wraps long lines anywhere
    assert f"benchmark:trace-replay{trace}(notonthismachine" in out and "caps=none" in out
    trace.write_text("{}\n")
    print_summary(r, plan_for(r), title="Dry run")
    out = "".join(capsys.readouterr().out.split())
    assert f"trace-replay{trace}caps=nonegoodputttft<=2000.0ms" in out
