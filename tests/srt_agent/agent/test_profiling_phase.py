"""The profiling phase against real simulated SGLang workers, the nsys wrapper and the dry-run output.

Servers are real processes on 127.0.0.1 (ports 36000-36999): `python -m srt_agent.sim` workers,
started directly or through a rendered launch script with tests/fixtures/fake-nsys on PATH.
Golden files: tests/golden/dry-run-nsys/<case>/expected/; regenerate with SRT_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import anyio
import httpx
import pytest
import yaml

from srt_agent.agent.profiling_phase import (
    LOAD_RESULT,
    MAX_LOAD_ROUNDS,
    NSYS_ACTIVITIES,
    TORCH_ACTIVITIES,
    control_url,
    nsys_output,
    profile_request,
    profile_targets,
    profiling_loadgen_command,
    profiling_num_prompts,
    run_profiling,
)
from srt_agent.agent.status import StatusWriter
from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ProfilingError
from srt_agent.job_config import JobConfig, ProfilingSection
from srt_agent.plan import Endpoint, NodeInfo, NodeSpec, Plan, PlanInputs, ProcessSpec, WorkerSpec, make_plan
from srt_agent.resolved import load_job

REPO = Path(__file__).resolve().parents[3]
FAKE_NSYS = REPO / "tests" / "fixtures" / "fake-nsys"
GOLDEN = REPO / "tests" / "golden" / "dry-run-nsys"
PORTS = range(36100, 36999)
_next_port = [PORTS.start + (os.getpid() % 50) * 16]


# ---- helpers ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port in this suite's range that nothing listens on right now."""
    for _ in range(len(PORTS)):
        port = _next_port[0]
        _next_port[0] = port + 1 if port + 1 < PORTS.stop else PORTS.start
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 36100-36999")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from srt_agent.sim.model_dir import write_model_dir

    return write_model_dir(tmp_path_factory.mktemp("model") / "tiny-sim")


class Proc:
    """A server process started by a test, stopped by its own pid (process group) at the end."""

    def __init__(self, argv: list[str], log: Path, env: dict | None = None) -> None:
        self.log = log
        self._out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(argv, stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                      start_new_session=True, cwd=str(log.parent))

    def wait_healthy(self, url: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"server exited with {self.popen.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=1.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{url} not healthy after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._out.close()


@pytest.fixture
def procs():
    started: list[Proc] = []
    yield started
    for p in started:
        p.stop()


def sim_command(model_dir: Path, port: int, *, role: str | None = None, bootstrap: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "srt_agent.sim", "--model-path", str(model_dir), "--served-model-name", "tiny",
           "--host", "127.0.0.1", "--port", str(port), "--sim-decode-step-ms", "2", "--sim-startup-s", "0",
           "--sim-kv-transfer-ms", "1"]
    if role:
        cmd += ["--disaggregation-mode", role]
    if bootstrap:
        cmd += ["--disaggregation-bootstrap-port", str(bootstrap)]
    return cmd


def start_sim(procs: list[Proc], model_dir: Path, tmp_path: Path, name: str, **kw) -> tuple[int, list[str]]:
    for attempt in range(3):
        port = free_port()
        cmd = sim_command(model_dir, port, **kw)
        p = Proc(cmd, tmp_path / f"{name}.{attempt}.log")
        procs.append(p)
        try:
            p.wait_healthy(f"http://127.0.0.1:{port}")
            return port, cmd
        except AssertionError:
            # 36000-36999 lies in Linux's ephemeral range: an outgoing connection may take the port
            # between the check and the server's bind; try another one
            if "address already in use" not in p.log.read_text() or attempt == 2:
                raise
    raise AssertionError("unreachable")


def job_config(profiling: dict, *, mode: str = "aggregated", engine: str = "sim", router: bool = True) -> JobConfig:
    resources = ({"agg_nodes": 1, "agg_workers": 1} if mode == "aggregated" else
                 {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1})
    return JobConfig.model_validate({
        "name": "profiling-test", "model": {"path": "/models/tiny"}, "resources": resources,
        "backend": {"engine": engine, "use_sglang_router": router},
        "profiling": profiling, "benchmark": {"type": "manual"}})


def worker_plan(workers: list[tuple[str, int, list[str], dict]], endpoint_port: int, *, engine: str = "sim",
                endpoint_kind: str = "router", mode: str = "aggregated") -> Plan:
    """A plan of already-running single-node workers: (role, port, command, env) each, on 127.0.0.1."""
    processes, specs, index = [], [], {}
    for role, port, cmd, env in workers:
        i = index[role] = index.get(role, -1) + 1
        name = f"{role}-{i}"
        processes.append(ProcessSpec(name=name, kind="worker", node="local0", address="127.0.0.1", role=role,
                                     worker=i, command=cmd, env=env, port=port, health_path="/health"))
        specs.append(WorkerSpec(role=role, index=i, nodes=["local0"], leader="local0", leader_address="127.0.0.1",
                                gpus=[0], http_port=port, tp=1, dp=1, ep=1, processes=[name]))
    return Plan(job_id="1", mode=mode, engine=engine, head_node="local0",
                nodes=[NodeSpec(name="local0", address="127.0.0.1", roles=[w[0] for w in workers])],
                workers=specs, processes=processes,
                endpoint=Endpoint(kind=endpoint_kind, node="local0", address="127.0.0.1", port=endpoint_port),
                served_model_name="tiny", model_path="/models/tiny", port_base=36000, total_gpus=len(workers),
                decode_gpus=1)


def make_ctx(job: JobConfig, run_dir: Path, model_dir: Path) -> SimpleNamespace:
    for sub in ("logs", "results", "profiles"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return SimpleNamespace(job=job, run_dir=run_dir, resolved=SimpleNamespace(model_path=str(model_dir)),
                           status=StatusWriter(run_dir, job_id="1", name=job.name, executor="local"))


def events(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "events.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def resolved_job(tmp_path: Path, job: dict, cluster: dict):
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    return load_job(tmp_path / "job.yaml", ClusterConfig.model_validate(cluster))


def loopback_plan(resolved, run_dir: Path, nodes: int) -> Plan:
    return make_plan(resolved, PlanInputs(job_id="0", nodes=[NodeInfo(f"local{i}", "127.0.0.1") for i in range(nodes)],
                                          log_dir=str(run_dir), srtctl_root=str(REPO), host_python=sys.executable))


# ---- pure parts: targets, request bodies, load size --------------------------------------------------


def test_request_body_asks_for_stop_minus_start_steps():
    torch = ProfilingSection(type="torch", start_step=5, stop_step=25)
    nsys = ProfilingSection(type="nsys", start_step=0, stop_step=7)
    target = SimpleNamespace(output_dir="/logs/profiles/decode")
    assert profile_request(torch, target) == {"output_dir": "/logs/profiles/decode", "start_step": 5,
                                              "num_steps": 20, "activities": TORCH_ACTIVITIES}
    body = profile_request(nsys, target)
    assert body["num_steps"] == 7 and body["activities"] == NSYS_ACTIVITIES == ["CUDA_PROFILER"]


@pytest.mark.parametrize("isl,osl,conc,stop", [(1024, 128, 24, 50), (8, 2, 1, 1), (100, 1, 64, 500),
                                               (4096, 1024, 512, 10)])
def test_load_covers_stop_step_decode_steps_and_arrivals(isl, osl, conc, stop):
    p = ProfilingSection(type="torch", isl=isl, osl=osl, concurrency=conc, stop_step=stop)
    n = profiling_num_prompts(p)
    assert n >= stop + conc  # a prefill worker sees at least one step per arrival
    assert n * max(1, osl - 1) / conc >= stop  # a decode worker runs about one step per token of the batch
    assert n >= 2 * conc


def test_loadgen_command_uses_profiling_shape_and_never_fails_on_latency(tmp_path, model_dir):
    p = ProfilingSection(type="torch", isl=300, osl=20, concurrency=6, stop_step=30)
    plan = worker_plan([("agg", 36001, ["x"], {})], 36001)
    cmd = profiling_loadgen_command(plan, p, tmp_path / "r.json", tokenizer=str(model_dir))
    args = dict(zip(cmd[3::2], cmd[4::2]))
    assert cmd[1:3] == ["-m", "srt_agent.loadgen"]
    assert args["--url"] == "http://127.0.0.1:36001" and args["--model"] == "tiny"
    assert (args["--isl"], args["--osl"], args["--concurrency"]) == ("300", "20", "6")
    assert args["--num-prompts"] == str(profiling_num_prompts(p))
    assert args["--warmup-multiplier"] == "0" and args["--max-failed-fraction"] == "1"
    assert args["--tokenizer"] == str(model_dir)


def test_targets_disaggregated_router_host_processes(tmp_path):
    resolved = resolved_job(tmp_path, {
        "name": "t", "model": {"path": "/models/tiny"},
        "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 2},
        "backend": {"use_sglang_router": True}, "profiling": {"type": "torch"}, "benchmark": {"type": "manual"},
    }, {"gpus_per_node": 2, "container_runtime": "none", "executor": "local"})
    run_dir = tmp_path / "run"
    plan = loopback_plan(resolved, run_dir, 2)
    targets = profile_targets(plan, "torch", run_dir)
    by = {t.worker: t for t in targets}
    assert sorted(by) == ["decode-0", "decode-1", "prefill-0"]
    # one prefill worker: the role's directory, as SGLANG_TORCH_PROFILER_DIR says
    assert by["prefill-0"].output_dir == f"{run_dir}/profiles/prefill"
    assert by["prefill-0"].host_dir == run_dir / "profiles" / "prefill"
    # several decode workers: one sub-directory each, so every file names its worker
    assert by["decode-1"].output_dir == f"{run_dir}/profiles/decode/decode-1"
    w = {x.name: x for x in plan.workers}
    assert by["decode-1"].control_url == w["decode-1"].url
    assert all(t.nsys == [] for t in targets)


def test_targets_in_containers_use_logs_mount_and_nsys_stems_per_node(tmp_path):
    resolved = resolved_job(tmp_path, {
        "name": "t", "model": {"path": "/models/tiny", "container": "/c/sglang.sqsh"},
        "resources": {"prefill_nodes": 1, "decode_nodes": 2, "prefill_workers": 1, "decode_workers": 1},
        "backend": {"use_sglang_router": True}, "profiling": {"type": "nsys"}, "benchmark": {"type": "manual"},
    }, {"gpus_per_node": 4})
    run_dir = tmp_path / "run"
    plan = loopback_plan(resolved, run_dir, 3)
    targets = {t.worker: t for t in profile_targets(plan, "nsys", run_dir)}
    assert targets["prefill-0"].output_dir == "/logs/profiles/prefill"
    assert targets["prefill-0"].host_dir == run_dir / "profiles" / "prefill"
    decode = targets["decode-0"]
    assert [(o.process, o.node) for o in decode.nsys] == [("decode-0-r0", "local1"), ("decode-0-r1", "local2")]
    assert [o.host_stem for o in decode.nsys] == [run_dir / "profiles" / "nsys_decode_0_local1",
                                                  run_dir / "profiles" / "nsys_decode_0_local2"]
    assert nsys_output(plan.process("prefill-0")) == "/logs/profiles/nsys_prefill_0_local0"


def test_dynamo_sglang_worker_is_profiled_through_the_system_server(tmp_path):
    resolved = resolved_job(tmp_path, {
        "name": "t", "model": {"path": "/models/tiny"}, "resources": {"agg_nodes": 1, "agg_workers": 1},
        "backend": {"use_sglang_router": False}, "profiling": {"type": "torch"}, "benchmark": {"type": "manual"},
    }, {"gpus_per_node": 1, "container_runtime": "none", "executor": "local"})
    plan = loopback_plan(resolved, tmp_path / "run", 1)
    leader = plan.process("agg-0")
    assert leader.env["DYN_SYSTEM_PORT"] == str(leader.port)
    assert control_url(plan, plan.workers[0]) == f"http://127.0.0.1:{leader.port}/engine"


def test_dynamo_mocker_cannot_be_profiled(tmp_path):
    plan = worker_plan([("agg", 36002, ["python3", "-m", "dynamo.mocker"], {})], 36003, engine="dynamo-mocker",
                       endpoint_kind="frontend")
    plan.workers[0].http_port = None
    with pytest.raises(ProfilingError) as err:
        profile_targets(plan, "torch", tmp_path)
    assert "agg-0" in str(err.value) and "dynamo-mocker" in str(err.value)
    assert "use_sglang_router: true" in str(err.value) and "sim" in str(err.value)


def test_worker_without_http_port_names_the_fix(tmp_path):
    plan = worker_plan([("agg", 36002, ["x"], {})], 36003)
    plan.workers[0].http_port = None
    with pytest.raises(ProfilingError, match=r"agg-0: .*use_sglang_router: true or backend.engine: sim"):
        profile_targets(plan, "torch", tmp_path)


def test_nsys_type_with_unwrapped_command_is_an_error(tmp_path):
    plan = worker_plan([("agg", 36002, ["python3", "-m", "sglang.launch_server"], {})], 36003)
    with pytest.raises(ProfilingError, match="not wrapped in `nsys profile"):
        profile_targets(plan, "nsys", tmp_path)


# ---- against running simulated workers --------------------------------------------------------------


def read_trace(path: Path) -> dict:
    with gzip.open(path, "rt") as f:
        return json.load(f)


async def test_torch_profile_of_an_aggregated_worker(tmp_path, model_dir, procs):
    job = job_config({"type": "torch", "isl": 32, "osl": 8, "concurrency": 4, "start_step": 0, "stop_step": 12})
    run_dir = tmp_path / "run"
    env = {"SGLANG_TORCH_PROFILER_DIR": f"{run_dir}/profiles/agg"}
    port, cmd = start_sim(procs, model_dir, tmp_path, "agg-0")
    plan = worker_plan([("agg", port, cmd, env)], port)
    ctx = make_ctx(job, run_dir, model_dir)

    files = await run_profiling(ctx, plan)

    assert files and all(f.startswith("profiles/agg/") and f.endswith(".trace.json.gz") for f in files)
    assert all((run_dir / f).is_file() for f in files)
    trace = read_trace(run_dir / files[0])
    assert trace["srt_sim"]["activities"] == TORCH_ACTIVITIES
    assert len(trace["srt_sim"]["steps"]) == 12  # the load covered all stop_step - start_step steps
    result = json.loads((run_dir / LOAD_RESULT).read_text())
    assert result["total_output_tokens"] > 0 and result["num_prompts"] == profiling_num_prompts(job.profiling)
    assert len(events(run_dir, "profiling_load_done")) == 1  # one round covered the steps
    started = events(run_dir, "profiling_started")
    assert started[0]["workers"] == {"agg-0": f"{run_dir}/profiles/agg"}
    assert events(run_dir, "profiling_traces")[0]["files"] == files
    assert (run_dir / "logs" / "profiling.log").read_text().strip()


async def test_every_worker_of_a_role_gets_its_own_directory(tmp_path, model_dir, procs, monkeypatch):
    import srt_agent.agent.profiling_phase as phase

    monkeypatch.setattr(phase, "ROUND_GRACE_S", 0.3)
    job = job_config({"type": "torch", "isl": 16, "osl": 6, "concurrency": 2, "start_step": 0, "stop_step": 4})
    run_dir = tmp_path / "run"
    p0, c0 = start_sim(procs, model_dir, tmp_path, "agg-0")
    p1, c1 = start_sim(procs, model_dir, tmp_path, "agg-1")
    plan = worker_plan([("agg", p0, c0, {}), ("agg", p1, c1, {})], p0)
    # the load reaches only agg-0; agg-1 idles: the agent sends more rounds (up to the cap) waiting for
    # agg-1 to finish its steps, then stop_profile ends agg-1's (empty) trace
    files = await run_profiling(make_ctx(job, run_dir, model_dir), plan)
    dirs = {Path(f).parent.as_posix() for f in files}
    assert dirs == {"profiles/agg/agg-0", "profiles/agg/agg-1"}
    assert [e["round"] for e in events(run_dir, "profiling_load_done")] == list(range(1, MAX_LOAD_ROUNDS + 1))
    again = events(run_dir, "profiling_load_again")
    assert len(again) == MAX_LOAD_ROUNDS - 1
    assert all(len(e["waiting_for"]) == 1 and e["waiting_for"][0].startswith("agg-1 ") for e in again)
    assert (run_dir / "results" / f"profiling_load_{MAX_LOAD_ROUNDS}.json").is_file()
    idle = [f for f in files if "/agg-1/" in f]
    assert read_trace(run_dir / idle[0])["srt_sim"]["steps"] == []


async def test_refused_start_profile_names_the_worker(tmp_path, model_dir, procs):
    job = job_config({"type": "torch", "isl": 16, "osl": 4, "concurrency": 2, "stop_step": 5})
    run_dir = tmp_path / "run"
    port, cmd = start_sim(procs, model_dir, tmp_path, "agg-0")
    # a profile already running on the worker (blocking client: nothing else runs yet)
    busy = httpx.post(f"http://127.0.0.1:{port}/start_profile",  # noqa: ASYNC210
                      json={"output_dir": str(tmp_path / "other")}, trust_env=False)
    assert busy.status_code == 200
    plan = worker_plan([("agg", port, cmd, {})], port)
    with pytest.raises(ProfilingError) as err:
        await run_profiling(make_ctx(job, run_dir, model_dir), plan)
    text = str(err.value)
    assert "start_profile failed for agg-0 (role agg)" in text and "400" in text and "already in progress" in text
    assert not (run_dir / LOAD_RESULT).exists()  # no load is sent once a worker refused


async def test_load_without_tokens_fails_and_leaves_no_worker_profiling(tmp_path, model_dir, procs):
    job = job_config({"type": "torch", "isl": 16, "osl": 4, "concurrency": 2, "stop_step": 5})
    run_dir = tmp_path / "run"
    port, cmd = start_sim(procs, model_dir, tmp_path, "agg-0")
    dead_endpoint = free_port()  # nothing listens there: every request fails
    plan = worker_plan([("agg", port, cmd, {})], dead_endpoint)
    with pytest.raises(ProfilingError, match=r"the profiling load (got no tokens back|.*wrote no result)"):
        await run_profiling(make_ctx(job, run_dir, model_dir), plan)
    # the failed phase still called stop_profile: the worker accepts a new start_profile
    again = httpx.post(f"http://127.0.0.1:{port}/start_profile",  # noqa: ASYNC210
                       json={"output_dir": str(tmp_path / "o")}, trust_env=False)
    assert again.status_code == 200, again.text


async def test_dynamo_route_missing_is_reported_with_the_fix(tmp_path, model_dir, procs):
    # a server without /engine/start_profile (what a Dynamo release without SGLang engine routes answers)
    job = job_config({"type": "torch", "stop_step": 5}, engine="sglang", router=False)
    port, _cmd = start_sim(procs, model_dir, tmp_path, "agg-0")
    plan = worker_plan([("agg", port, ["python3", "-m", "dynamo.sglang"], {})], port, engine="sglang",
                       endpoint_kind="frontend")
    with pytest.raises(ProfilingError) as err:
        await run_profiling(make_ctx(job, tmp_path / "run", model_dir), plan)
    text = str(err.value)
    assert f"POST http://127.0.0.1:{port}/engine/start_profile -> 404" in text
    assert "dynamo_version" in text and "use_sglang_router: true" in text


# ---- nsys: a rendered launch script under the fake nsys ----------------------------------------------


def nsys_worker(tmp_path: Path, model_dir: Path, procs: list[Proc]) -> tuple[Plan, Path, Path, int]:
    """Render the launch script of an nsys-wrapped sim worker and run it with fake-nsys first on PATH."""
    from srt_agent.launch_script import render_launch_script

    resolved = resolved_job(tmp_path, {
        "name": "nsys-sim", "model": {"path": str(model_dir), "served_model_name": "tiny"},
        "resources": {"agg_nodes": 1, "agg_workers": 1},
        "backend": {"engine": "sim", "use_sglang_router": True, "sim": {"decode_step_ms": 2, "startup_s": 0}},
        "profiling": {"type": "nsys", "isl": 16, "osl": 6, "concurrency": 2, "stop_step": 6},
        "benchmark": {"type": "manual"},
    }, {"gpus_per_node": 1, "container_runtime": "none", "executor": "local"})
    run_dir = tmp_path / "run"
    plan = loopback_plan(resolved, run_dir, 1)
    # move the plan's ports into this suite's range (the allocator hands out 10000-31999)
    port = free_port()
    old = plan.workers[0].http_port
    data = json.loads(re.sub(rf'(?<![0-9]){old}(?![0-9])', str(port), plan.model_dump_json()))
    data["endpoint"].update(kind="router", address="127.0.0.1", port=port)  # load straight to the worker
    plan = Plan.model_validate(data)
    proc = plan.process("agg-0")
    text, _secret = render_launch_script(plan, proc, log_dir=str(run_dir), configs_dir=str(REPO / "configs"),
                                         setup_script=None, dynamo_cache=str(tmp_path / "cache"))
    for sub in ("logs", "launch", "profiles", "results"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    script = run_dir / "launch" / "agg-0.sh"
    script.write_text(text)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nsys").symlink_to(FAKE_NSYS)
    record = tmp_path / "nsys-args.jsonl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_NSYS_RECORD": str(record),
           "PYTHONPATH": str(REPO)}
    p = Proc(["bash", str(script)], tmp_path / "agg-0.launcher.log", env=env)
    procs.append(p)
    p.wait_healthy(f"http://127.0.0.1:{port}")
    return plan, run_dir, record, port


def test_fake_nsys_records_the_wrapper_and_runs_the_worker(tmp_path, model_dir, procs):
    plan, run_dir, record, port = nsys_worker(tmp_path, model_dir, procs)
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == 1
    args = calls[0]
    o = args.index("-o")
    assert args[:o] == ["profile", "-t", "cuda,nvtx", "--cuda-graph-trace=node", "-c", "cudaProfilerApi",
                        "--capture-range-end", "stop"]
    assert args[o + 1] == f"{run_dir}/profiles/nsys_agg_0_local0"
    wrapped = args[o + 2:]
    assert wrapped == plan.process("agg-0").command[o + 3:]  # the plan's command minus `nsys profile ... -o F`
    assert wrapped[1:3] == ["-m", "srt_agent.sim"] and wrapped[wrapped.index("--port") + 1] == str(port)
    info = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False).json()
    assert info["data"][0]["id"] == "tiny"  # the worker under the wrapper serves


async def test_nsys_profile_waits_for_the_report_of_every_node(tmp_path, model_dir, procs):
    plan, run_dir, _record, _port = nsys_worker(tmp_path, model_dir, procs)
    job = JobConfig.model_validate_json(json.dumps({
        "name": "nsys-sim", "model": {"path": str(model_dir)}, "resources": {"agg_nodes": 1, "agg_workers": 1},
        "backend": {"engine": "sim", "use_sglang_router": True},
        "profiling": {"type": "nsys", "isl": 16, "osl": 6, "concurrency": 2, "stop_step": 6},
        "benchmark": {"type": "manual"}}))
    log = tmp_path / "agg-0.launcher.log"
    worker_log = run_dir / "logs" / plan.process("agg-0").log
    report = run_dir / "profiles" / "nsys_agg_0_local0.nsys-rep"

    async def nsys_writes_report_when_the_capture_range_ends() -> None:
        # what nsys does on cudaProfilerStop: the simulated worker logs the end of its CUDA profiler range
        while "CUDA profiler range" not in (worker_log.read_text() if worker_log.exists() else "") + log.read_text():
            await anyio.sleep(0.05)
        report.write_bytes(b"NSYS-REPORT")

    async with anyio.create_task_group() as tg:
        tg.start_soon(nsys_writes_report_when_the_capture_range_ends)
        files = await run_profiling(make_ctx(job, run_dir, model_dir), plan)
    assert files == ["profiles/nsys_agg_0_local0.nsys-rep"]
    assert not list((run_dir / "profiles").rglob("*.trace.json.gz"))  # CUDA_PROFILER writes no torch trace


async def test_nsys_report_missing_names_worker_and_node(tmp_path, model_dir, procs, monkeypatch):
    import srt_agent.agent.profiling_phase as phase

    monkeypatch.setattr(phase, "TRACE_TIMEOUT_S", 1.5)
    plan, run_dir, _record, _port = nsys_worker(tmp_path, model_dir, procs)
    job = JobConfig.model_validate({
        "name": "nsys-sim", "model": {"path": str(model_dir)}, "resources": {"agg_nodes": 1, "agg_workers": 1},
        "backend": {"engine": "sim", "use_sglang_router": True},
        "profiling": {"type": "nsys", "isl": 16, "osl": 4, "concurrency": 2, "stop_step": 4},
        "benchmark": {"type": "manual"}})
    with pytest.raises(ProfilingError) as err:
        await run_profiling(make_ctx(job, run_dir, model_dir), plan)
    text = str(err.value)
    assert "agg-0 (role agg) on local0: no nsys_agg_0_local0.nsys-rep" in text and "after 2 s" in text


# ---- dry-run golden files ------------------------------------------------------------------------------

GOLDEN_CASES = {
    "disagg-container-router": ["commands.txt", "launch/prefill-0.sh", "launch/decode-0-r0.sh",
                                "launch/decode-0-r1.sh"],
    "agg-host-dynamo": ["commands.txt", "launch/agg-0.sh"],
}
# (case, file) -> bug: the golden file holds the correct output; the test xfails until the bug is fixed,
# and fails once the output matches (then delete the entry)
KNOWN_BUGS: dict[tuple[str, str], str] = {}


def normalise(text: str) -> str:
    return re.sub(r"_\d{8}_\d{6}(?=[/:_\s'\"]|$)", "_<TIMESTAMP>", text, flags=re.MULTILINE)


def worker_blocks(commands: str) -> str:
    """The worker blocks of commands.txt (what profiling changes); NATS, etcd, router... left out."""
    blocks = commands.split("\n\n")
    return "\n\n".join(b.strip("\n") for b in blocks if re.match(r"# \S+  \(worker ", b.strip())) + "\n"


def dry_run(case: str, tmp_path: Path) -> Path:
    src = GOLDEN / case
    env = {**os.environ, "SRTSLURM_CONFIG": str(src / "srtslurm.yaml")}
    env.pop("SRTCTL_ROOT", None)
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "dry-run", "-f", str(src / "job.yaml"),
                          "--output-dir", str(tmp_path / "out"), "--quiet"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    (out,) = (tmp_path / "out").iterdir()
    return out


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_dry_run_matches_golden_files(case, tmp_path):
    import difflib

    out = dry_run(case, tmp_path)
    expected_dir = GOLDEN / case / "expected"
    diffs, known = [], []
    for name in GOLDEN_CASES[case]:
        got = normalise((out / name).read_text())
        if name == "commands.txt":
            got = worker_blocks(got)
        want_path = expected_dir / name
        bug = KNOWN_BUGS.get((case, name))
        if os.environ.get("SRT_UPDATE_GOLDEN") == "1" and bug is None:
            want_path.parent.mkdir(parents=True, exist_ok=True)
            want_path.write_text(got)
        want = want_path.read_text()
        if got == want:
            assert bug is None, f"{name} now matches its golden file: the known bug is fixed, remove it from KNOWN_BUGS"
            continue
        diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                            f"golden/{name}", f"dry-run/{name}"))
        (known if bug else diffs).append(diff)
    assert not diffs, "dry-run output differs from the golden files (SRT_UPDATE_GOLDEN=1 to accept):\n" + \
        "\n".join(diffs)
    if known:
        pytest.xfail("known bug: " + "; ".join(KNOWN_BUGS[(case, n)] for n in GOLDEN_CASES[case]
                                                if (case, n) in KNOWN_BUGS) + "\n" + "\n".join(known))


def test_golden_nsys_outputs_match_what_the_phase_waits_for(tmp_path):
    out = dry_run("disagg-container-router", tmp_path)
    plan = Plan.model_validate_json((out / "plan.json").read_text())
    run_dir = tmp_path / "run"
    stems = [o.host_stem for t in profile_targets(plan, "nsys", run_dir) for o in t.nsys]
    assert stems == [run_dir / "profiles" / f"nsys_{n}" for n in ("prefill_0_node0", "decode_0_node1",
                                                                  "decode_0_node2")]
    commands = (out / "commands.txt").read_text()
    for stem in ("nsys_prefill_0_node0", "nsys_decode_0_node1", "nsys_decode_0_node2"):
        assert f"-o /logs/profiles/{stem} python3 -m sglang.launch_server" in commands


# ---- the whole torch flow through `srtctl apply --local` ------------------------------------------------


@pytest.mark.slow
def test_apply_local_torch_profiling_disaggregated(tmp_path, model_dir):
    (tmp_path / "srtslurm.yaml").write_text(yaml.safe_dump({
        "executor": "local", "container_runtime": "none", "node_addresses": "loopback", "gpus_per_node": 1,
        "srtctl_root": str(REPO), "python": sys.executable}))
    (tmp_path / "job.yaml").write_text(yaml.safe_dump({
        "name": "profile-local",
        "model": {"path": str(model_dir), "served_model_name": "tiny"},
        "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1},
        "backend": {"engine": "sim", "use_sglang_router": True,
                    "sim": {"decode_step_ms": 2, "startup_s": 0, "kv_transfer_ms": 1}},
        "profiling": {"type": "torch", "isl": 32, "osl": 8, "concurrency": 4, "start_step": 0, "stop_step": 10},
        "benchmark": {"type": "manual"},
        "health": {"worker_timeout_s": 60, "frontend_timeout_s": 60, "shutdown_grace_s": 5},
    }, sort_keys=False))
    env = {**os.environ, "SRTSLURM_CONFIG": str(tmp_path / "srtslurm.yaml")}
    env.pop("SRTCTL_ROOT", None)
    res = subprocess.run([sys.executable, "-m", "launcher.cli", "apply", "--local", "-f", "job.yaml"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    runs = list((tmp_path / "logs").glob("*_1P_1D_*"))
    assert len(runs) == 1, res.stdout + res.stderr
    run_dir = runs[0]
    status = json.loads((run_dir / "status.json").read_text())
    assert res.returncode == 0 and status["state"] == "succeeded", \
        f"{res.stderr[-3000:]}\nstatus: {json.dumps(status.get('failure'))}"
    files = status["profiles"]
    roles = {Path(f).parts[1] for f in files}
    assert roles == {"prefill", "decode"}, files
    for f in files:
        assert (run_dir / f).is_file() and (run_dir / f).stat().st_size > 0
        trace = read_trace(run_dir / f)
        assert trace["srt_sim"]["role"] == Path(f).parts[1]
        assert len(trace["srt_sim"]["steps"]) == 10  # the load covered stop_step - start_step on both roles
    assert status["phases"].get("profiling") == "done"


def test_request_body_uses_the_role_steps():
    prof = ProfilingSection(type="torch", start_step=5, stop_step=25, decode={"start_step": 1, "stop_step": 4})
    assert profile_request(prof, SimpleNamespace(output_dir="/x", role="decode"))["num_steps"] == 3
    assert profile_request(prof, SimpleNamespace(output_dir="/x", role="prefill"))["start_step"] == 5
    assert prof.max_stop_step == 25
