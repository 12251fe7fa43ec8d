"""The pure plan: placement, GPUs, ports, commands, endpoint, and its JSON form."""

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import PlanError
from srt_agent.plan import NodeInfo, Plan, PlanInputs, make_plan
from srt_agent.resolved import load_job, load_job_text

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ClusterConfig(model_paths={"deepseek-r1": "/models/DeepSeek-R1", "llama-70b": "/models/Llama-3-70B"},
                        containers={"latest": "/c/latest.sqsh", "stable": "/c/stable.sqsh"})
HOST = CLUSTER.model_copy(update={"container_runtime": "none"})


def nodes(n, shared_address=None):
    return [NodeInfo(name=f"gpu-{i:03d}", address=shared_address or f"10.1.{i // 250}.{i % 250 + 1}")
            for i in range(n)]


def plan_of(resolved, n=None, job_id="4242", shared_address=None, **kw) -> Plan:
    inputs = PlanInputs(job_id=job_id, nodes=nodes(n or resolved.total_nodes, shared_address),
                        log_dir="/lustre/logs/4242_run", srtctl_root="/opt/srt", host_python="/venv/bin/python", **kw)
    return make_plan(resolved, inputs)


def job(resources: str, backend: str = "", tail: str = "", cluster=CLUSTER):
    text = f"name: t\nmodel:\n  path: deepseek-r1\n  container: latest\nresources:\n{resources}"
    if backend:
        text += f"backend:\n{backend}"
    return load_job_text(text + tail, cluster)


def disagg(pn, dn, pw, dw, gpn=4, backend="", tail="", cluster=CLUSTER):
    return job(f"  prefill_nodes: {pn}\n  decode_nodes: {dn}\n  prefill_workers: {pw}\n  decode_workers: {dw}\n"
               f"  gpus_per_node: {gpn}\n", backend, tail, cluster)


def agg(n, w, gpn=4, backend="", tail="", cluster=CLUSTER):
    return job(f"  agg_nodes: {n}\n  agg_workers: {w}\n  gpus_per_node: {gpn}\n", backend, tail, cluster)


def flag(cmd, name, count=1):
    i = cmd.index(name)
    return cmd[i + 1] if count == 1 else cmd[i + 1:i + 1 + count]


def listening(plan: Plan) -> dict[tuple[str, int], set[str]]:
    """(address, port) -> names of the processes that listen there."""
    owners: dict[tuple[str, int], set[str]] = defaultdict(set)
    for p in plan.processes:
        if p.port:
            owners[(p.address, p.port)].add(p.name)
        if int(p.env.get("DYN_SYSTEM_PORT", "-1")) > 0:
            owners[(p.address, int(p.env["DYN_SYSTEM_PORT"]))].add(p.name)
        for f in ("-p", "-m") if p.kind == "nats" else ("--port", "--http-port"):
            if f in p.command:
                owners[(p.address, int(flag(p.command, f)))].add(p.name)
        for url_flag in ("--listen-client-urls", "--listen-peer-urls"):
            if url_flag in p.command:
                owners[(p.address, int(flag(p.command, url_flag).rsplit(":", 1)[1]))].add(p.name)
    for w in plan.workers:
        for port in (w.http_port, w.bootstrap_port, w.dist_init_port):
            if port:
                owners[(w.leader_address, port)].add(w.processes[0])
    return owners


def assert_ports_unique(plan: Plan):
    clashes = {k: v for k, v in listening(plan).items() if len(v) > 1}
    assert not clashes, clashes
    assert all(10000 <= port < 32768 for _, port in listening(plan))


# ---- the seed example --------------------------------------------------------------------

@pytest.fixture(scope="module")
def seed():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    return plan_of(r)


def test_seed_processes_and_nodes(seed):
    assert seed.mode == "disaggregated" and seed.head_node == "gpu-000"
    names = [p.name for p in seed.processes]
    assert names == ["nats", "etcd", "prefill-0", "decode-0-r0", "decode-0-r1",
                     *[f"frontend-{i}" for i in range(10)], "nginx"]
    roles = {n.name: n.roles for n in seed.nodes}
    assert roles["gpu-000"][:2] == ["infra", "prefill"] and "nginx" in roles["gpu-000"]
    assert "decode" in roles["gpu-001"] and "decode" in roles["gpu-002"]
    assert "benchmark" in roles["gpu-000"]
    assert seed.total_gpus == 12 and seed.decode_gpus == 8


def test_seed_prefill_worker(seed):
    p = seed.process("prefill-0")
    assert p.node == "gpu-000" and p.gpus == [0, 1, 2, 3] and p.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    cmd = p.command
    assert cmd[:3] == ["python3", "-m", "dynamo.sglang"]
    assert flag(cmd, "--model-path") == "/model" and flag(cmd, "--served-model-name") == "DeepSeek-R1"
    assert flag(cmd, "--tp-size") == "4" and flag(cmd, "--disaggregation-mode") == "prefill"
    assert int(flag(cmd, "--disaggregation-bootstrap-port")) == seed.workers[0].bootstrap_port
    assert flag(cmd, "--kv-cache-dtype") == "fp8_e4m3" and flag(cmd, "--mem-fraction-static") == "0.84"
    assert "--tensor-parallel-size" not in cmd and "--dist-init-addr" not in cmd
    assert p.env["TORCH_DISTRIBUTED_DEFAULT_TIMEOUT"] == "1800"
    assert p.env["NATS_SERVER"] == seed.nats_url and p.env["ETCD_ENDPOINTS"] == seed.etcd_url
    assert p.container and p.dynamo_version == "0.7.0" and p.health_path == "/health"


def test_seed_decode_worker_spans_two_nodes(seed):
    (w,) = [w for w in seed.workers if w.role == "decode"]
    assert w.nodes == ["gpu-001", "gpu-002"] and w.leader == "gpu-001"
    assert (w.tp, w.dp, w.ep) == (8, 8, 8) and w.processes == ["decode-0-r0", "decode-0-r1"]
    dist = f"{w.leader_address}:{w.dist_init_port}"
    for rank, name in enumerate(w.processes):
        p = seed.process(name)
        assert p.node == w.nodes[rank] and p.node_rank == rank and p.gpus == [0, 1, 2, 3]
        cmd = p.command
        assert flag(cmd, "--dist-init-addr") == dist
        assert flag(cmd, "--nnodes") == "2" and flag(cmd, "--node-rank") == str(rank)
        assert flag(cmd, "--tp-size") == "8" and flag(cmd, "--disaggregation-mode") == "decode"
        assert "--disaggregation-bootstrap-port" not in cmd
        assert cmd[-1] == "--enable-dp-attention"  # true -> bare flag
        assert flag(cmd, "--expert-parallel-size") == "8" and flag(cmd, "--data-parallel-size") == "8"
    # only the leader is health-checked
    assert seed.process("decode-0-r0").health_url is not None
    assert seed.process("decode-0-r1").health_url is None


def test_seed_infra_on_head(seed):
    nats, etcd = seed.process("nats"), seed.process("etcd")
    assert nats.node == etcd.node == "gpu-000"
    assert flag(nats.command, "-a") == "10.1.0.1" and "-js" in nats.command
    assert flag(nats.command, "-c") == "/lustre/logs/4242_run/infra/nats.conf"  # carries max_payload
    assert seed.nats_url == f"nats://10.1.0.1:{flag(nats.command, '-p')}"
    assert flag(etcd.command, "--listen-client-urls") == seed.etcd_url
    # state on node-local disk (default /tmp/srt-<jobid>), never the shared run directory
    assert seed.state_dir == "/tmp/srt-4242"
    assert flag(etcd.command, "--data-dir") == "/tmp/srt-4242/etcd" and flag(nats.command, "-sd") == "/tmp/srt-4242/nats"


def test_node_local_dir_moves_etcd_and_nats_state():
    cluster = CLUSTER.model_copy(update={"node_local_dir": "/local/scratch"})
    plan = plan_of(load_job(ROOT / "configs" / "my-job.yaml", cluster))
    assert flag(plan.process("etcd").command, "--data-dir") == "/local/scratch/srt-4242/etcd"
    assert flag(plan.process("nats").command, "-sd") == "/local/scratch/srt-4242/nats"
    assert plan.process("nginx").health_url == f"http://10.1.0.1:{plan.process('nginx').port}/nginx_health"


def test_seed_frontends_off_head_and_nginx_on_head(seed):
    fronts = seed.frontends
    assert len(fronts) == 10
    assert {f.node for f in fronts} == {"gpu-001", "gpu-002"}
    assert [f.node for f in fronts].count("gpu-001") == 5
    for f in fronts:
        assert flag(f.command, "--http-host") == f.address and int(flag(f.command, "--http-port")) == f.port
        assert f.env["DYN_SYSTEM_PORT"] == "-1" and f.env["NATS_SERVER"] == seed.nats_url
    (nginx,) = seed.by_kind("nginx")
    assert nginx.node == "gpu-000"
    assert seed.endpoint.kind == "nginx" and seed.endpoint.port == nginx.port
    assert seed.endpoint.url == f"http://10.1.0.1:{nginx.port}"


def test_seed_container_mounts(seed):
    assert seed.container_image == "/c/latest.sqsh" and seed.model_path == "/model"
    assert seed.container_mounts == ["/models/DeepSeek-R1:/model", "/lustre/logs/4242_run:/logs",
                                     "/opt/srt/configs:/configs", "/opt/srt:/srtctl",
                                     "/local-dir1:/container-dir1", "/local-dir2:/container-dir2"]


def test_seed_ports_unique(seed):
    assert_ports_unique(seed)


# ---- layouts -----------------------------------------------------------------------------

def test_several_workers_per_node_split_gpus():
    r = disagg(1, 1, 2, 4, gpn=8)
    plan = plan_of(r)
    prefill = [p for p in plan.processes if p.role == "prefill"]
    decode = [p for p in plan.processes if p.role == "decode"]
    assert [p.gpus for p in prefill] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [p.env["CUDA_VISIBLE_DEVICES"] for p in decode] == ["0,1", "2,3", "4,5", "6,7"]
    assert {p.node for p in prefill} == {"gpu-000"} and {p.node for p in decode} == {"gpu-001"}
    assert [flag(p.command, "--tp-size") for p in decode] == ["2"] * 4
    assert len({w.bootstrap_port for w in plan.workers if w.role == "prefill"}) == 2
    assert_ports_unique(plan)


def test_aggregated_with_router():
    r = load_job(ROOT / "configs" / "agg-example.yaml", CLUSTER)
    plan = plan_of(r)
    assert plan.mode == "aggregated" and plan.nats_url is None and not plan.by_kind("nats")
    workers = [p for p in plan.processes if p.kind == "worker"]
    assert [(p.node, p.gpus) for p in workers] == [("gpu-000", [0, 1]), ("gpu-000", [2, 3]),
                                                   ("gpu-001", [0, 1]), ("gpu-001", [2, 3])]
    for p, w in zip(workers, plan.workers):
        assert p.command[:3] == ["python3", "-m", "sglang.launch_server"]
        assert flag(p.command, "--host") == p.address and int(flag(p.command, "--port")) == w.http_port == p.port
        assert "--disaggregation-mode" not in p.command and p.dynamo_version is None
        assert p.env["SGLANG_ENABLE_TORCH_COMPILE"] == "0"
    (router,) = plan.by_kind("router")
    assert router.node == "gpu-000" and plan.endpoint.kind == "router" and plan.endpoint.port == router.port
    cmd = router.command
    assert cmd[:3] == ["python3", "-m", "sglang_router.launch_router"]
    assert flag(cmd, "--worker-urls", 4) == [w.url for w in plan.workers]
    assert flag(cmd, "--policy") == "round_robin" and "--pd-disaggregation" not in cmd
    assert plan.decode_gpus == 8
    assert_ports_unique(plan)


def test_router_in_pd_mode():
    r = disagg(2, 2, 2, 1, backend="  use_sglang_router: true\n")
    plan = plan_of(r)
    assert not plan.by_kind("nats") and not plan.by_kind("frontend") and not plan.by_kind("nginx")
    cmd = plan.process("router").command
    assert "--pd-disaggregation" in cmd
    prefill = [w for w in plan.workers if w.role == "prefill"]
    decode = [w for w in plan.workers if w.role == "decode"]
    expected = []
    for w in prefill:
        expected += ["--prefill", w.url, str(w.bootstrap_port)]
    for w in decode:
        expected += ["--decode", w.url]
    assert cmd[cmd.index("--pd-disaggregation") + 1:] == expected
    for w in prefill:
        p = plan.process(w.processes[0])
        assert flag(p.command, "--disaggregation-bootstrap-port") == str(w.bootstrap_port)
        assert p.command[2] == "sglang.launch_server"
    # the decode worker spans both decode nodes; its URL is its leader's
    (dw,) = decode
    assert dw.nodes == ["gpu-002", "gpu-003"] and dw.url == f"http://{plan.process('decode-0-r0').address}:{dw.http_port}"
    assert_ports_unique(plan)


def test_rack_scale_18_nodes_72_gpus():
    r = disagg(6, 12, 6, 1, backend="  sglang_config:\n    decode:\n      tp-size: 48\n      dp-size: 48\n"
                                     "      ep-size: 48\n      enable-dp-attention: true\n")
    plan = plan_of(r)
    assert plan.total_gpus == 72 and plan.decode_gpus == 48 and len(plan.nodes) == 18
    prefill = [w for w in plan.workers if w.role == "prefill"]
    assert [w.nodes for w in prefill] == [[f"gpu-{i:03d}"] for i in range(6)]
    (dw,) = [w for w in plan.workers if w.role == "decode"]
    assert dw.nodes == [f"gpu-{i:03d}" for i in range(6, 18)] and (dw.tp, dw.dp, dw.ep) == (48, 48, 48)
    ranks = [plan.process(n) for n in dw.processes]
    assert [flag(p.command, "--node-rank") for p in ranks] == [str(i) for i in range(12)]
    assert {flag(p.command, "--nnodes") for p in ranks} == {"12"}
    assert {flag(p.command, "--dist-init-addr") for p in ranks} == {f"{dw.leader_address}:{dw.dist_init_port}"}
    # every node runs exactly one worker process and all its GPUs are used
    per_node = defaultdict(list)
    for p in plan.processes:
        if p.kind == "worker":
            per_node[p.node].append(p.gpus)
    assert all(v == [[0, 1, 2, 3]] for v in per_node.values()) and len(per_node) == 18
    assert {f.node for f in plan.frontends} <= {f"gpu-{i:03d}" for i in range(1, 18)}
    assert plan.process("nginx").node == "gpu-000"
    assert_ports_unique(plan)


def test_too_few_nodes_is_a_plan_error():
    with pytest.raises(PlanError, match="needs 3 nodes but 2 were given"):
        plan_of(load_job(ROOT / "configs" / "my-job.yaml", CLUSTER), n=2)


def test_extra_nodes_are_left_out():
    plan = plan_of(load_job(ROOT / "configs" / "my-job.yaml", CLUSTER), n=5)
    assert [n.name for n in plan.nodes] == ["gpu-000", "gpu-001", "gpu-002"]


# ---- ports -------------------------------------------------------------------------------

def test_nodes_sharing_one_address_get_distinct_ports():
    r = disagg(2, 2, 4, 1, gpn=2)
    plan = plan_of(r, shared_address="127.0.0.1")
    assert {p.address for p in plan.processes} == {"127.0.0.1"}
    assert_ports_unique(plan)


@pytest.mark.parametrize("shared", [None, "127.0.0.1"])
def test_two_job_ids_give_disjoint_ports_on_a_shared_node(shared):
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    a = plan_of(r, job_id="1000", shared_address=shared)
    b = plan_of(r, job_id="1001", shared_address=shared)
    pa, pb = set(listening(a)), set(listening(b))
    assert a.port_base != b.port_base
    assert {port for _, port in pa}.isdisjoint({port for _, port in pb})


def test_port_block_depends_only_on_job_id():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    assert plan_of(r, job_id="77") == plan_of(r, job_id="77")  # pure and deterministic


# ---- endpoint variants -------------------------------------------------------------------

def test_num_additional_frontends():
    plan = plan_of(disagg(1, 1, 1, 1, backend="  num_additional_frontends: 3\n"))
    assert len(plan.frontends) == 4 and {f.node for f in plan.frontends} == {"gpu-001"}
    assert plan.endpoint.kind == "nginx"
    assert_ports_unique(plan)


def test_multiple_frontends_disabled_gives_one_frontend_without_nginx():
    plan = plan_of(disagg(1, 2, 1, 1, backend="  enable_multiple_frontends: false\n"))
    (f,) = plan.frontends
    assert f.node == "gpu-000" and not plan.by_kind("nginx")
    assert plan.endpoint.kind == "frontend" and plan.endpoint.port == f.port


def test_single_node_gives_one_frontend_without_nginx():
    plan = plan_of(agg(1, 1))
    (f,) = plan.frontends
    assert f.node == "gpu-000" and not plan.by_kind("nginx") and plan.endpoint.kind == "frontend"
    assert plan.process("agg-0").command[2] == "dynamo.sglang"


def test_aggregated_dynamo_on_several_nodes_uses_one_frontend():
    plan = plan_of(agg(2, 2))
    assert len(plan.frontends) == 1 and not plan.by_kind("nginx")


# ---- profiling ---------------------------------------------------------------------------

def test_nsys_wraps_every_worker():
    plan = plan_of(disagg(1, 2, 1, 1, tail="profiling:\n  type: nsys\nbenchmark:\n  type: manual\n"))
    for p in plan.processes:
        if p.kind != "worker":
            assert p.command[0] != "nsys"
            continue
        cmd = p.command
        assert cmd[:10] == ["nsys", "profile", "-t", "cuda,nvtx", "--cuda-graph-trace=node", "-c",
                            "cudaProfilerApi", "--capture-range-end", "stop", "-o"]
        assert cmd[10] == f"/logs/profiles/nsys_{p.role}_{p.worker}_{p.node}"
        assert cmd[11:14] == ["python3", "-m", "dynamo.sglang"]
    outputs = [p.command[10] for p in plan.processes if p.kind == "worker"]
    assert len(set(outputs)) == len(outputs)


def test_torch_profiler_directory_per_role():
    plan = plan_of(disagg(1, 1, 1, 1, tail="profiling:\n  type: torch\nbenchmark:\n  type: manual\n"))
    assert plan.process("prefill-0").env["SGLANG_TORCH_PROFILER_DIR"] == "/logs/profiles/prefill"
    assert plan.process("decode-0").env["SGLANG_TORCH_PROFILER_DIR"] == "/logs/profiles/decode"
    assert plan.process("decode-0").command[0] == "python3"


def test_custom_nsys_binary():
    plan = plan_of(agg(1, 1, tail="profiling:\n  type: nsys\n  nsys_binary: /opt/nsys/bin/nsys\n"))
    assert plan.process("agg-0").command[0] == "/opt/nsys/bin/nsys"


# ---- engines and host processes ----------------------------------------------------------

def test_host_processes_without_container():
    plan = plan_of(disagg(1, 1, 1, 1, cluster=HOST))
    assert plan.container_image is None and plan.container_mounts == []
    p = plan.process("prefill-0")
    assert not p.container and p.command[0] == "/venv/bin/python"
    assert flag(p.command, "--model-path") == "/models/DeepSeek-R1" == plan.model_path


def test_simulated_engine():
    plan = plan_of(disagg(1, 1, 2, 1, backend="  engine: sim\n  use_sglang_router: true\n  sim:\n    seed: 7\n"))
    workers = [p for p in plan.processes if p.kind == "worker"]
    assert all(p.command[1:3] == ["-m", "srt_agent.sim"] for p in workers)
    assert [flag(p.command, "--sim-seed") for p in workers] == ["7", "8", "7"]
    assert all(p.env["PYTHONPATH"] == "/srtctl" for p in workers)
    assert all(p.dynamo_version is None for p in workers)
    assert plan.endpoint.kind == "router"


def test_dynamo_mocker_engine():
    cluster = CLUSTER.model_copy(update={"dynamo_venv": "/opt/dynamo-venv"})
    plan = plan_of(disagg(1, 1, 1, 1, backend="  engine: dynamo-mocker\n", cluster=cluster))
    p = plan.process("prefill-0")
    assert p.command[:3] == ["/opt/dynamo-venv/bin/python", "-m", "dynamo.mocker"]
    assert flag(p.command, "--disaggregation-mode") == "prefill"
    assert p.dynamo_version is None and int(p.env["DYN_SYSTEM_PORT"]) == p.port
    f = plan.frontends[0]
    assert f.command[0] == "/opt/dynamo-venv/bin/python" and not f.container
    assert all(w.http_port is None for w in plan.workers)
    assert_ports_unique(plan)


def test_setup_script_marks_workers_only():
    r = load_job(ROOT / "configs" / "my-job.yaml", CLUSTER)
    plan = plan_of(r, setup_script="custom-setup.sh")
    assert all(p.setup_script == (p.kind == "worker") for p in plan.processes)
    assert not any(p.setup_script for p in plan_of(r).processes)


# ---- JSON --------------------------------------------------------------------------------

def test_plan_json_round_trip(seed):
    text = seed.model_dump_json()
    back = Plan.model_validate_json(text)
    assert back == seed
    assert Plan.model_validate(json.loads(json.dumps(seed.model_dump(mode="json")))) == seed
    data = json.loads(text)
    assert data["schema_version"] == 1 and data["endpoint"]["kind"] == "nginx"
    assert re.fullmatch(r"http://10\.1\.0\.1:\d+", back.endpoint.url)


def test_flags_reach_the_worker_command_as_separate_arguments():
    r = agg(1, 1, backend="  sglang_config:\n    aggregated:\n      cuda_graph_bs: [1, 2, 4]\n"
                          "      disable-radix-cache: false\n      enable-torch-compile: true\n"
                          "      json-model-override-args: {\"a\": 1}\n      chat-template: \"a b; $(x)\"\n")
    cmd = plan_of(r).process("agg-0").command
    tail = cmd[cmd.index("--tp-size") + 2:]
    assert tail == ["--enable-metrics", "--cuda-graph-bs", "1", "2", "4", "--enable-torch-compile",
                    "--json-model-override-args", '{"a":1}', "--chat-template", "a b; $(x)"]


def test_hostile_mount_paths_stay_whole():
    from srt_agent.srun import srun_command

    mounts = ["/data/with space:/in container", "/q/it's \"quoted\"/$(x):/m:ro", "/ünï/`y`;z:/u"]
    r = load_job_text(f"name: t\nmodel:\n  path: deepseek-r1\n  container: latest\nextra_mount: {json.dumps(mounts)}\n"
                      "resources:\n  agg_nodes: 1\n  agg_workers: 1\n", CLUSTER)
    plan = plan_of(r)
    assert plan.container_mounts[-3:] == mounts
    argv = srun_command(["true"], nodes=["n"], job_name="j", container_image=plan.container_image,
                        container_mounts=plan.container_mounts)
    (arg,) = [a for a in argv if a.startswith("--container-mounts=")]
    assert arg[len("--container-mounts="):].split(",") == plan.container_mounts
