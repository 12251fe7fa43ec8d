"""`benchmark.type: custom` through the real agent (local executor, simulated engine): the command
reaches the endpoint with the environment it is given, its exit code fails the job, resume skips it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CLIENT = r'''
import json, os, sys, urllib.request
url, model, out = os.environ["SRT_ENDPOINT_URL"], os.environ["SRT_MODEL"], os.environ["SRT_RESULTS_DIR"]
body = json.dumps({"model": model, "prompt": "hello there", "max_tokens": 4}).encode()
req = urllib.request.Request(url + "/v1/completions", data=body, headers={"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=30))
with open(os.path.join(out, "my_bench.json"), "w") as f:
    json.dump({"tokens": answer["usage"]["completion_tokens"], "concurrency": os.environ["CONCURRENCY"],
               "arg": sys.argv[1], "cwd": os.getcwd()}, f)
with open(sys.argv[2], "a") as f:
    f.write("ran\n")
print("my bench done")
'''


def test_the_command_measures_the_endpoint_and_is_not_rerun_on_resume(local_run, tmp_path):
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    runs = tmp_path / "runs.txt"
    job = local_run.job_file("custom-ok", mode="agg", benchmark={
        "type": "custom", "command": [sys.executable, str(client), "it's; $(quoted)", str(runs)],
        "env": {"CONCURRENCY": 4}})
    res = local_run.apply(job)
    assert res.returncode == 0, res.stderr[-3000:]
    run = local_run.run_dir()
    mine = json.loads((run / "results" / "my_bench.json").read_text())
    assert mine["tokens"] == 4 and mine["concurrency"] == "4" and mine["arg"] == "it's; $(quoted)"
    assert mine["cwd"] == str(run / "results")
    result = json.loads((run / "results" / "custom_benchmark.json").read_text())
    assert result["exit_code"] == 0 and result["passed"] is True and result["command"][1] == str(client)
    assert "my bench done" in (run / "logs" / "custom-benchmark.log").read_text()
    # the servers' metrics were scraped while it ran (telemetry of a converted recipe relies on it)
    assert result["server_metrics"]["file"] == "results/custom_benchmark.csv.gz"
    assert (run / "results" / "custom_benchmark.csv.gz").stat().st_size > 0
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "succeeded"
    assert status["benchmark"]["custom"]["exit_code"] == 0 and status["benchmark"]["custom"]["state"] == "done"
    assert json.loads((run / "ledger.json").read_text())["phases"]["benchmark"]["exit_code"] == 0
    for cmd in (("status", run.name), ("runs",)):
        st = local_run.srtctl(*cmd)
        assert st.returncode == 0 and "Traceback" not in st.stderr, st.stderr
    # a requeued job finds it done and does not run it again
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--resume", str(run)], cwd=local_run.workdir,
                         env=local_run.env(), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert runs.read_text() == "ran\n"
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert [e for e in events if e["event"] == "phase_skipped" and e.get("phase") == "benchmark"]
    assert len([e for e in events if e["event"] == "custom_benchmark_start"]) == 1


def test_a_failing_command_fails_the_job_with_its_exit_code_and_log_tail(local_run):
    job = local_run.job_file("custom-fail", mode="agg", benchmark={
        "type": "custom", "command": "echo \"about to fail at $SRT_ENDPOINT_URL\"; exit 3"})
    res = local_run.apply(job)
    assert res.returncode != 0
    run = local_run.run_dir()
    result = json.loads((run / "results" / "custom_benchmark.json").read_text())
    assert result["exit_code"] == 3 and result["passed"] is False
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "failed" and status["benchmark"]["custom"]["exit_code"] == 3
    msg = status["failure"]["message"]
    assert "exited with code 3" in msg and "about to fail at http://127.0.0.1:" in msg, msg
    assert "benchmark" not in json.loads((run / "ledger.json").read_text())["phases"]


def test_a_secret_in_the_failing_command_output_never_reaches_status(local_run):
    secret = "hf_CustomBenchSecretValue42"
    job = local_run.job_file("custom-secret", mode="agg", benchmark={
        "type": "custom", "command": f"echo 'using token {secret}'; exit 3"},
        extra={"backend": {"aggregated_environment": {"HF_TOKEN": secret}}})
    res = local_run.apply(job)
    assert res.returncode != 0
    run = local_run.run_dir()
    msg = json.loads((run / "status.json").read_text())["failure"]["message"]
    assert "using token" in msg and secret not in msg, msg
    agent_output = res.stdout + res.stderr.split("\n--- ")[0]  # without the log tails the test adds
    assert secret not in agent_output
