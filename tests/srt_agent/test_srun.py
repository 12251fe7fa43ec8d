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
