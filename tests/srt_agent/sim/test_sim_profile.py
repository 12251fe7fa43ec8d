"""/start_profile and /stop_profile write torch-trace-like files where SGLang would."""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from pathlib import Path

import httpx
from sim_helpers import FAST, free_port


def load(path: Path) -> dict:
    with gzip.open(path, "rt") as fh:
        return json.load(fh)


def wait_for_files(directory: Path, count: int, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(directory.glob("*.trace.json.gz")) if directory.exists() else []
        if len(files) >= count:
            return files
        time.sleep(0.05)
    raise AssertionError(f"expected {count} trace files in {directory}")


def keep_busy(url: str, seconds: float) -> threading.Thread:
    def run() -> None:
        httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": int(seconds * 200),
                                                  "ignore_eos": True}, timeout=30)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_num_steps_profile_writes_one_trace_per_tp_rank(start_sim, tmp_path):
    sim = start_sim("--tp-size", "2", "--disaggregation-mode", "prefill", "--disaggregation-bootstrap-port",
                    str(free_port()), *FAST, "--sim-prefill-tokens-per-s-per-gpu", "1000")
    out = tmp_path / "prof"
    resp = httpx.post(sim.url + "/start_profile", json={"output_dir": str(out), "num_steps": 3, "start_step": 0,
                                                        "activities": ["CPU", "GPU"]})
    assert resp.status_code == 200
    for _ in range(3):  # a prefill worker runs one forward pass per (batch of) request(s)
        httpx.post(sim.url + "/generate", json={"text": "a b c d", "sampling_params": {"max_new_tokens": 1}})
    files = wait_for_files(out, 2)
    assert [re.sub(r"^[\d.]+", "ID", f.name) for f in files] == ["ID-TP-0.trace.json.gz", "ID-TP-1.trace.json.gz"]
    trace = load(files[1])
    assert trace["srt_sim"]["role"] == "prefill" and trace["srt_sim"]["tp_rank"] == 1
    assert trace["srt_sim"]["node"] and trace["srt_sim"]["activities"] == ["CPU", "GPU"]
    steps = trace["srt_sim"]["steps"]
    assert [s["kind"] for s in steps] == ["prefill"] * 3 and all(s["tokens"] == 4 for s in steps)
    assert [e["name"] for e in trace["traceEvents"]] == ["prefill_forward"] * 3
    assert all(e["ph"] == "X" and e["dur"] > 0 for e in trace["traceEvents"])
    # the profile stopped by itself: a new one can start
    assert httpx.post(sim.url + "/start_profile", json={"output_dir": str(out)}).status_code == 200


def test_manual_stop_and_profiler_dir_env(start_sim, tmp_path, monkeypatch):
    out = tmp_path / "env-dir"
    monkeypatch.setenv("SGLANG_TORCH_PROFILER_DIR", str(out))
    sim = start_sim("--sim-decode-step-ms", "5")
    client = httpx.Client(base_url=sim.url)
    assert client.post("/stop_profile").status_code == 400  # not profiling
    assert client.post("/start_profile", json={}).status_code == 200
    assert client.post("/start_profile", json={}).status_code == 400  # already profiling
    keep_busy(sim.url, 0.3).join()
    assert client.post("/stop_profile").status_code == 200
    (trace_file,) = wait_for_files(out, 1)
    trace = load(trace_file)
    kinds = {s["kind"] for s in trace["srt_sim"]["steps"]}
    assert kinds == {"prefill", "decode"} and trace["srt_sim"]["role"] == "aggregated"
    assert len(trace["srt_sim"]["steps"]) > 10


def test_cuda_profiler_activity_writes_no_torch_trace(start_sim, tmp_path):
    sim = start_sim(*FAST)
    out = tmp_path / "nsys"
    client = httpx.Client(base_url=sim.url)
    assert client.post("/start_profile", json={"output_dir": str(out), "activities": ["CUDA_PROFILER"]}).status_code == 200
    keep_busy(sim.url, 0.1).join()
    assert client.post("/stop_profile").status_code == 200
    assert not out.exists() or not list(out.iterdir())
    assert "CUDA profiler range ended" in sim.log


def test_mem_activity_writes_memory_snapshots(start_sim, tmp_path):
    sim = start_sim("--tp-size", "2", *FAST)
    out = tmp_path / "mem"
    client = httpx.Client(base_url=sim.url)
    assert client.post("/start_profile", json={"output_dir": str(out), "activities": ["MEM"]}).status_code == 200
    assert client.post("/stop_profile").status_code == 200
    names = sorted(re.sub(r"^[\d.]+", "T", p.name) for p in out.iterdir())
    assert names == ["T-TP-0-memory.pickle", "T-TP-1-memory.pickle"]
