"""Per-process launch scripts: structure, secrets, setup script, Dynamo cache, and quoting that holds
against hostile values (the scripts are run for real here, with bash)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from srt_agent.cluster_config import ClusterConfig
from srt_agent.launch_script import process_paths, render_launch_script
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import load_job_text

BASH = shutil.which("bash")
ENV_BIN = shutil.which("env")
pytestmark = pytest.mark.skipif(not BASH or not ENV_BIN, reason="needs bash and env")

HOST = ClusterConfig(container_runtime="none")
PYXIS = ClusterConfig(containers={"latest": "/c/latest.sqsh"})
JOB = """\
name: t
model:
  path: /models/m
  {container}
resources:
  agg_nodes: 1
  agg_workers: 1
backend:
  {router}
  aggregated_environment:
    PLAIN: "a b"
    HF_TOKEN: "hf_secret_value_123"
"""


def make(cluster=HOST, router=True, container=""):
    text = JOB.format(router="use_sglang_router: true" if router else "", container=container)
    r = load_job_text(text, cluster)
    return make_plan(r, PlanInputs(job_id="9", nodes=[NodeInfo("n0", "127.0.0.1")], log_dir="/runs/9",
                                   srtctl_root="/opt/srt", host_python=sys.executable))


def render(plan, proc, log_dir="/runs/9", configs_dir="/opt/srt/configs", setup_script=None):
    return render_launch_script(plan, proc, log_dir=log_dir, configs_dir=configs_dir, setup_script=setup_script,
                                dynamo_cache="/opt/srt/.cache")


def bash_n(text: str):
    proc = subprocess.run([BASH, "-n"], input=text, text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_structure_and_secret_handling():
    plan = make()
    proc = plan.process("agg-0")
    text, secret = render(plan, proc)
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert "exec >>/runs/9/logs/n0_agg-0.log 2>&1" in text
    assert "export PLAIN='a b'" in text
    assert 'export HF_TOKEN="${HF_TOKEN}"' in text and "hf_secret_value_123" not in text
    assert secret == {"HF_TOKEN": "hf_secret_value_123"}
    assert "pip install" not in text and "bash " not in text.split("set -euo")[1].split("exec ")[0]
    assert text.rstrip().splitlines()[-1].startswith(f"exec {sys.executable} -m sglang.launch_server")
    bash_n(text)


def test_paths_inside_and_outside_the_container():
    host = make()
    assert process_paths(host, host.process("agg-0"), "/runs/9") == {
        "log": "/runs/9/logs/n0_agg-0.log", "script": "/runs/9/launch/agg-0.sh", "base": "/runs/9"}
    boxed = make(PYXIS, container="container: latest")
    p = boxed.process("agg-0")
    assert p.container and process_paths(boxed, p, "/runs/9")["script"] == "/logs/launch/agg-0.sh"
    text, _ = render(boxed, p, setup_script="custom-setup.sh")
    assert "bash /configs/custom-setup.sh" not in text  # the process was not planned with a setup script


def test_setup_script_only_when_planned():
    r = load_job_text(JOB.format(router="use_sglang_router: true", container="container: latest"), PYXIS)
    plan = make_plan(r, PlanInputs(job_id="9", nodes=[NodeInfo("n0", "127.0.0.1")], log_dir="/runs/9",
                                   srtctl_root="/opt/srt", setup_script="custom-setup.sh"))
    text, _ = render(plan, plan.process("agg-0"), setup_script="custom-setup.sh")
    assert "\nbash /configs/custom-setup.sh\n" in text
    router_text, _ = render(plan, plan.process("router"), setup_script="custom-setup.sh")
    assert "custom-setup.sh" not in router_text
    bash_n(text)


def test_dynamo_install_block_is_cached_and_locked():
    plan = make(router=False)
    text, _ = render(plan, plan.process("agg-0"))
    assert "/srt_agent/dynamo_install.py --version 0.7.0 --cache-root /opt/srt/.cache" in text
    assert "--target" not in text and "PYTHONPATH" not in text
    assert 'exec "$srt_python" -m dynamo.sglang --model-path /models/m' in text
    bash_n(text)
    nats_text, _ = render(plan, plan.process("nats"))
    assert "ai-dynamo" not in nats_text


# ---- running the scripts with hostile values ---------------------------------------------

DUMP = 'for a in "$@"; do printf "%s\\0" "$a"; done > "$SRT_T_ARGS"; "$SRT_T_ENV_BIN" -0 > "$SRT_T_ENVOUT"'
FRAGMENTS = ["'", '"', "$(touch pwned)", "`touch pwned`", "${HOME}", "$HOME", ";", "&&", "|", "\\", "\\'",
             " ", "  ", "\t", "\n", "#", "*", "?", "[a]", "~", "!", "%", "{a,b}", "é", "漢字", "🙂", "-e", "--x=1",
             "\r", "<", ">", "(", ")"]
FREE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), FREE), max_size=6).map("".join)
hostile_line = hostile.map(lambda s: s.replace("\n", " ").replace("\r", " "))
file_name = st.lists(st.one_of(st.sampled_from([f for f in FRAGMENTS if f not in ("\n", "\r")]),
                               st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8)),
                     min_size=1, max_size=5).map("".join).map(lambda s: s.replace("/", "_")) \
    .filter(lambda s: s not in ("", ".", "..") and len(s.encode()) < 200)


def run_script(tmp: Path, plan, proc, *, log_dir: Path, configs_dir: Path, setup_script: str | None,
               inherited: dict[str, str]):
    text, secret = render(plan, proc, log_dir=str(log_dir), configs_dir=str(configs_dir), setup_script=setup_script)
    bash_n(text)
    (log_dir / "logs").mkdir(parents=True, exist_ok=True)
    script = tmp / "launch.sh"
    script.write_text(text)
    out_args, out_env = tmp / "args", tmp / "env"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SRT_T_ARGS": str(out_args),
           "SRT_T_ENVOUT": str(out_env), "SRT_T_ENV_BIN": ENV_BIN, **inherited, **secret}
    done = subprocess.run([BASH, str(script)], env=env, cwd=tmp, capture_output=True, timeout=20)
    log = (log_dir / "logs" / proc.log).read_bytes().decode()
    assert done.returncode == 0, log
    args = out_args.read_bytes().decode().split("\0")[:-1]
    got_env = dict(item.split("=", 1) for item in out_env.read_bytes().decode().split("\0")[:-1])
    return text, args, got_env, log


# no shrinking: each example runs bash (~0.15 s), and shrinking a failure took minutes
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.dictionaries(st.from_regex(r"SRT_T_V[A-Z0-9_]{0,6}", fullmatch=True), hostile, max_size=4),
       args=st.lists(hostile, max_size=4), secret=hostile, setup=file_name, dirname=hostile_line.map(
           lambda s: s.replace("/", "_")), node=hostile_line)
def test_hostile_values_come_back_unchanged(tmp_path_factory, values, args, secret, setup, dirname, node):
    tmp = tmp_path_factory.mktemp("run")
    plan = make()
    base = tmp / ("d" + dirname)  # hostile directory names for the log and configs directories
    configs = base / "configs"
    configs.mkdir(parents=True)
    (configs / setup).write_text('printf "%s" ran > "$SRT_T_MARK"\n')
    secret = "S3cr3t-" + secret
    env = {**values, "SRT_T_SECRET_TOKEN": secret}
    proc = plan.process("agg-0").model_copy(update={
        "env": env, "command": ["/bin/sh", "-c", DUMP, "sh", *args], "setup_script": True,
        "node": "n" + node.replace("/", "_")})
    mark = tmp / "mark"
    text, got_args, got_env, log = run_script(tmp, plan, proc, log_dir=base / "run", configs_dir=configs,
                                              setup_script=setup,
                                              inherited={"SRT_T_MARK": str(mark), "SRT_T_SECRET_TOKEN": secret})
    assert got_args == args
    for key, value in env.items():
        assert got_env[key] == value
    assert "S3cr3t-" not in text  # the secret reaches the process through the environment, not the file
    assert mark.read_text() == "ran"
    assert not (tmp / "pwned").exists() and not Path("pwned").exists()
    assert log.startswith("[srt] ") and " starting agg-0 on " in log
