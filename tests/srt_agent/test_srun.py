"""The srun builder: explicit node/task counts, overlap, pyxis flags, command last."""

import pytest

from srt_agent.srun import srun_command


def test_basic_step():
    argv = srun_command(["python3", "-m", "x"], nodes=["n1"], job_name="j")
    assert argv == ["srun", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "--nodelist=n1", "--job-name=j",
                    "--kill-on-bad-exit=1", "--overlap", "python3", "-m", "x"]


def test_multi_node_step_with_container():
    argv = srun_command(["bash", "/logs/launch/decode-0-r0.sh"], nodes=["n1", "n2"], job_name="decode-0",
                        tasks_per_node=2, container_image="/c/img.sqsh",
                        container_mounts=["/m:/model", "/l:/logs"], overlap=False, extra=["--cpu-bind=none"])
    assert argv[:6] == ["srun", "--nodes=2", "--ntasks=4", "--ntasks-per-node=2", "--nodelist=n1,n2",
                        "--job-name=decode-0"]
    assert "--overlap" not in argv
    assert "--container-image=/c/img.sqsh" in argv and "--no-container-mount-home" in argv
    assert "--container-mounts=/m:/model,/l:/logs" in argv
    assert argv.index("--cpu-bind=none") < argv.index("bash")
    assert argv[-2:] == ["bash", "/logs/launch/decode-0-r0.sh"]


def test_no_mounts_flag_without_mounts():
    argv = srun_command(["true"], nodes=["n"], job_name="j", container_image="/i.sqsh")
    assert not any(a.startswith("--container-mounts") for a in argv)


def test_values_stay_single_arguments():
    argv = srun_command(["echo", "a b; $(x)"], nodes=["n"], job_name="name with 'quotes'")
    assert "--job-name=name with 'quotes'" in argv and argv[-1] == "a b; $(x)"


def test_needs_a_node():
    with pytest.raises(ValueError):
        srun_command(["true"], nodes=[], job_name="j")


def test_launch_commands_of_a_plan():
    from pathlib import Path

    from srt_agent.cluster_config import ClusterConfig
    from srt_agent.plan import NodeInfo, PlanInputs, make_plan
    from srt_agent.resolved import load_job
    from srt_agent.srun import with_launch_commands

    root = Path(__file__).resolve().parents[2]
    cluster = ClusterConfig(default_account="a", model_paths={"deepseek-r1": "/m"}, containers={"latest": "/c.sqsh"})
    r = load_job(root / "configs" / "my-job.yaml", cluster)
    plan = make_plan(r, PlanInputs(job_id="7", nodes=[NodeInfo(f"n{i}", f"10.0.0.{i}") for i in range(3)],
                                   log_dir="/runs/7", srtctl_root="/srt"))
    assert plan.executor is None and not any(p.launch for p in plan.processes)
    slurm = with_launch_commands(plan, executor="slurm", run_dir="/runs/7")
    assert slurm.executor == "slurm" and plan.processes[0].launch == []  # a copy
    for p in slurm.processes:
        script = f"/logs/launch/{p.name}.sh" if p.container else f"/runs/7/launch/{p.name}.sh"
        assert p.launch == srun_command(["bash", script], nodes=[p.node], job_name=f"srt-{p.name}",
                                        container_image="/c.sqsh" if p.container else None,
                                        container_mounts=plan.container_mounts if p.container else ())
    local = with_launch_commands(plan, executor="local", run_dir="/runs/7")
    assert [p.launch for p in local.processes] == [["bash", f"/runs/7/launch/{p.name}.sh"] if not p.container
                                                   else ["bash", f"/logs/launch/{p.name}.sh"] for p in plan.processes]
