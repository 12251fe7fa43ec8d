"""`benchmark.type: custom` settings: what the job file may say, and the script they become."""

from __future__ import annotations

import subprocess

import pytest
from pydantic import ValidationError

from srt_agent.custom_command import render_script
from srt_agent.job_config import JobConfig

AGG = {"agg_nodes": 1, "agg_workers": 1}


def bench(**b):
    return JobConfig.model_validate({"name": "t", "model": {"path": "/m"}, "resources": AGG,
                                     "benchmark": {"type": "custom", **b}}).benchmark


def test_string_and_argv_commands_and_env_values_become_strings():
    assert bench(command="aiperf profile && echo ok").command == "aiperf profile && echo ok"
    b = bench(command=["python3", "x.py"], env={"CONCURRENCY": 8, "FLAG": True})
    assert b.command == ["python3", "x.py"] and b.env == {"CONCURRENCY": "8", "FLAG": "true"}


@pytest.mark.parametrize("b,needle", [
    ({}, "needs command"),
    ({"command": "  "}, "command is empty"),
    ({"command": []}, "needs a program"),
    ({"command": "x", "env": {"SRT_MODEL": "m"}}, "set by srtctl itself"),
    ({"command": "x", "env": {"HF_TOKEN": "hf_abc"}}, "looks like a secret"),
    ({"command": "x", "env": {"1BAD": "v"}}, "not a valid environment variable name"),
    ({"command": "x", "timeout_s": 0}, "greater than 0"),
    ({"command": "x", "bogus": 1}, "bogus"),
])
def test_bad_custom_settings_are_refused(b, needle):
    with pytest.raises(ValidationError, match=needle):
        bench(**b)


def test_custom_keys_without_type_custom_are_refused():
    with pytest.raises(ValidationError, match="only apply to benchmark type custom"):
        JobConfig.model_validate({"name": "t", "model": {"path": "/m"}, "resources": AGG,
                                  "benchmark": {"type": "manual", "command": "x"}})


class _Endpoint:
    url = "http://127.0.0.1:8000"


class _Plan:
    job_id, head_node, served_model_name, endpoint = "7", "node0", "m'; rm -rf /", _Endpoint()


@pytest.mark.parametrize("command", [["printf", "%s|", "a b", "it's", "$(no)", "`no`"],
                                     "printf '%s|' \"$SRT_MODEL\" \"$X\""])
def test_the_script_quotes_every_value(tmp_path, command):
    b = bench(command=command, env={"X": "$(no) `no` \"q\""})
    (tmp_path / "results").mkdir()
    (tmp_path / "logs").mkdir()
    script = tmp_path / "s.sh"
    script.write_text(render_script(_Plan(), b, base=str(tmp_path)))
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and res.stdout == ""
    log = (tmp_path / "logs" / "custom-benchmark.log").read_text()
    want = "a b|it's|$(no)|`no`|" if isinstance(command, list) else "m'; rm -rf /|$(no) `no` \"q\"|"
    assert want in log, log
    assert "exited with code 0" in log


def test_dry_run_writes_the_script_the_agent_will_run(dry_run_variant):
    def edit(job):
        job["benchmark"] = {"type": "custom", "command": "aiperf profile --url \"$SRT_ENDPOINT_URL\" --out /logs/a",
                            "env": {"CONCURRENCY": 8}}

    out = dry_run_variant(edit)
    script = (out / "custom-benchmark.sh").read_text()
    assert "cd /logs/results" in script and "export CONCURRENCY=8" in script  # the run dir as the container sees it
    assert "bash -lc 'aiperf profile --url \"$SRT_ENDPOINT_URL\" --out /logs/a'" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
