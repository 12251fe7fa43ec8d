"""The plan: which process runs where, on which GPUs and ports, with which command. Pure: no I/O.

make_plan(resolved job, nodes, job id, ...) -> Plan, a pydantic model that serialises to plan.json.
Each worker's command comes from its engine (srt_agent.engines); the plan records on every
ProcessSpec what later phases need (the module run, profiler output paths), so they read fields
instead of parsing commands. Launchers (srt_agent.agent.launchers) turn each ProcessSpec into an
srun step or a local subprocess.
"""
# no `from __future__ import annotations`: pydantic reads the field types as objects, not strings to compile
# (CLI start-up); quote a forward reference (-> "Model") and import at run time what an annotation names

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from .client_plan import CLIENT_ROLE, client_node_names
from .cluster_config import new_list
from .dynamo import dynamo_install_spec, frontend_command
from .engines import WorkerArgs, engine_for
from .engines.base import dynamo_env_for
from .errors import PlanError
from .nginx import nginx_command
from .node_state import node_state_dir
from .ports import PortAllocator
from .resolved import PLAN_OWNED_FLAGS, TP_KEYS, ResolvedJob
from .router import router_command
from .sglang_flags import sglang_flags
from .kv_events import kv_events_args
from .srun_options import srun_option_args

SCHEMA_VERSION = 1
CONTAINER_MODEL = "/model"
CONTAINER_HF_CACHE = "/hf-cache"
CONTAINER_LOGS = "/logs"
CONTAINER_CONFIGS = "/configs"
CONTAINER_SRTCTL = "/srtctl"

Kind = Literal["nats", "etcd", "nginx", "frontend", "router", "worker", "benchmark"]


@dataclass(frozen=True)
class NodeInfo:
    name: str
    address: str


class ProcessSpec(BaseModel):
    name: str = Field(description="unique component name, also the log file stem")
    kind: Kind
    node: str
    address: str
    role: str | None = None
    worker: int | None = None
    node_rank: int = 0
    command: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    container: bool = False
    gpus: list[int] = Field(default_factory=new_list)
    port: int | None = None
    health_path: str | None = None
    critical: bool = True
    setup_script: bool = False
    dynamo_version: str | None = None
    python: str | None = Field(None, description="the interpreter the command runs on (nsys may wrap it)")
    launch: list[str] = Field(default_factory=new_list, description="the exact argv that starts the process (its srun "
                              "step, or `bash SCRIPT` locally); set by srun.with_launch_commands")
    module: str | None = Field(None, description="the Python module the command runs (`python -m MODULE`)")
    profile_dir: str | None = Field(None, description="torch profiler output directory, as the process sees it")
    nsys_output: str | None = Field(None, description="the `-o` of the `nsys profile` wrapper, as the process sees it")

    @property
    def log(self) -> str:
        return f"{self.node}_{self.name}.log"

    @property
    def health_url(self) -> str | None:
        if self.port is None or self.health_path is None:
            return None
        return f"http://{self.address}:{self.port}{self.health_path}"


class WorkerSpec(BaseModel):
    role: str
    index: int
    nodes: list[str]
    leader: str
    leader_address: str
    gpus: list[int]
    http_port: int | None
    bootstrap_port: int | None = None
    dist_init_port: int | None = None
    tp: int
    dp: int
    ep: int
    processes: list[str]

    @property
    def name(self) -> str:
        return f"{self.role}-{self.index}"

    @property
    def url(self) -> str | None:
        return f"http://{self.leader_address}:{self.http_port}" if self.http_port else None


class Endpoint(BaseModel):
    kind: Literal["nginx", "frontend", "router"]
    node: str
    address: str
    port: int
    extra_ports: list[int] = Field(default_factory=new_list, description="more ports serving the same endpoint "
                                   "(backend.nginx_listen_ports); the load generator spreads connections over all")

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"


class NodeSpec(BaseModel):
    name: str
    address: str
    roles: list[str]


class Plan(BaseModel):
    schema_version: int = SCHEMA_VERSION
    job_id: str
    mode: Literal["disaggregated", "aggregated"]
    engine: str
    head_node: str
    nodes: list[NodeSpec]
    workers: list[WorkerSpec]
    processes: list[ProcessSpec]
    endpoint: Endpoint
    nats_url: str | None = None
    etcd_url: str | None = None
    state_dir: str | None = Field(None, description="node-local directory of etcd's data and NATS's store")
    served_model_name: str
    model_path: str = Field(description="model path as the workers see it")
    container_image: str | None = None
    container_mounts: list[str] = Field(default_factory=new_list)
    worker_srun_options: list[str] = Field(default_factory=new_list)  # slurm.srun_options of the worker steps
    port_base: int
    total_gpus: int
    decode_gpus: int
    executor: Literal["slurm", "local"] | None = Field(None, description="launcher of the `launch` argvs")

    def process(self, name: str) -> ProcessSpec:
        for p in self.processes:
            if p.name == name:
                return p
        raise KeyError(name)

    def by_kind(self, kind: str) -> list[ProcessSpec]:
        return [p for p in self.processes if p.kind == kind]

    @property
    def frontends(self) -> list[ProcessSpec]:
        return self.by_kind("frontend")


@dataclass
class PlanInputs:
    """Everything the plan needs besides the job: decided at run time, or placeholders in a dry run."""

    job_id: str
    nodes: list[NodeInfo]
    log_dir: str
    srtctl_root: str
    host_python: str = "python3"
    configs_dir: str | None = None
    setup_script: str | None = None
    state_dir: str | None = None  # node-local etcd/NATS state; default node_state_dir(None, job_id)


class _Counter:
    """First pass of make_plan: counts the ports each address needs (hands out valid dummies)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def take(self, address: str) -> int:
        self.counts[address] = self.counts.get(address, 0) + 1
        return self.counts[address]


def make_plan(resolved: ResolvedJob, inputs: PlanInputs) -> Plan:
    need = resolved.total_nodes
    if len(inputs.nodes) < need:
        raise PlanError(f"the job needs {need} nodes but {len(inputs.nodes)} were given")
    counter = _Counter()
    _build(resolved, inputs, counter, port_base=0)
    per_address = max(counter.counts.values(), default=1)
    alloc = PortAllocator(inputs.job_id, per_address)
    return _build(resolved, inputs, alloc, port_base=alloc.base)


def _build(r: ResolvedJob, inp: PlanInputs, ports, port_base: int) -> Plan:
    job = r.job
    backend = job.backend
    nodes = inp.nodes[: r.worker_nodes]  # workers and frontends; dedicated client nodes follow
    all_nodes = inp.nodes[: r.total_nodes]
    head = nodes[0]
    in_container = r.container is not None
    worker_python = "python3" if in_container else (r.python or inp.host_python)  # host: model.python first
    hf_model = r.model_path[3:] if r.model_path.startswith("hf:") else None
    model_path = hf_model or (CONTAINER_MODEL if in_container else r.model_path)
    hf_env = {"HF_HOME": CONTAINER_HF_CACHE if in_container else str(r.cluster.hf_cache_dir)} if hf_model else {}
    logs = CONTAINER_LOGS if in_container else inp.log_dir
    eng = engine_for(backend)
    use_router = eng.behind_router
    needs_dynamo = not use_router
    served = r.served_model_name()
    roles_by_node: dict[str, list[str]] = {n.name: [] for n in all_nodes}
    processes: list[ProcessSpec] = []
    workers: list[WorkerSpec] = []

    nats_url = etcd_url = None
    state_dir = (inp.state_dir or node_state_dir(r.cluster.node_local_dir, str(inp.job_id))) if needs_dynamo else None
    if needs_dynamo:
        nats_port, nats_mon = ports.take(head.address), ports.take(head.address)
        etcd_port, etcd_peer = ports.take(head.address), ports.take(head.address)
        nats_url = f"nats://{head.address}:{nats_port}"
        etcd_url = f"http://{head.address}:{etcd_port}"
        processes.append(ProcessSpec(
            name="nats", kind="nats", node=head.name, address=head.address, port=nats_mon, health_path="/healthz",
            command=["nats-server", "-c", f"{inp.log_dir}/infra/nats.conf", "-a", head.address, "-p", str(nats_port),
                     "-m", str(nats_mon), "-js", "-sd", f"{state_dir}/nats"]))
        processes.append(ProcessSpec(
            name="etcd", kind="etcd", node=head.name, address=head.address, port=etcd_port, health_path="/health",
            command=["etcd", "--name", "srt-etcd", "--data-dir", f"{state_dir}/etcd",
                     "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                     "--listen-peer-urls", f"http://{head.address}:{etcd_peer}",
                     "--initial-advertise-peer-urls", f"http://{head.address}:{etcd_peer}",
                     "--initial-cluster", f"srt-etcd=http://{head.address}:{etcd_peer}"]))
        roles_by_node[head.name].append("infra")

    # ---- workers -------------------------------------------------------------------------
    offset = 0
    placed: dict[str, list[NodeInfo]] = {}
    for role in job.roles:
        lay = r.layouts[role]
        if lay.shares_nodes_of:
            role_nodes = placed[lay.shares_nodes_of]
        else:
            role_nodes = nodes[offset: offset + lay.nodes]
            offset += lay.nodes
        placed[role] = role_nodes
        sizes = r.parallel_sizes(role)
        user_flags = sglang_flags(job.role_flags(role), skip=TP_KEYS + PLAN_OWNED_FLAGS)
        for w in range(lay.workers):
            if lay.nodes_per_worker > 1:
                w_nodes = role_nodes[w * lay.nodes_per_worker:(w + 1) * lay.nodes_per_worker]
                gpus = list(range(r.gpus_per_node))
            else:
                w_nodes = [role_nodes[w // lay.workers_per_node]]
                k = w % lay.workers_per_node
                first = lay.gpu_offset + k * lay.gpus_per_worker
                gpus = list(range(first, first + lay.gpus_per_worker))
            leader = w_nodes[0]
            http_port = ports.take(leader.address) if eng.worker_http_port else None
            bootstrap = ports.take(leader.address) if role == "prefill" else None
            dist_port = ports.take(leader.address) if len(w_nodes) > 1 else None
            names = []
            for rank, node in enumerate(w_nodes):
                system_port = ports.take(node.address) if eng.worker_system_port else None
                launch = eng.worker_command(WorkerArgs(
                    r, role=role, python=worker_python, model_path=model_path, served=served,
                    host=node.address, http_port=http_port, bootstrap=bootstrap, tp=lay.gpus_per_worker,
                    nnodes=len(w_nodes), rank=rank, dist=f"{leader.address}:{dist_port}" if dist_port else None,
                    user_flags=user_flags, nats_url=nats_url, etcd_url=etcd_url, system_port=system_port,
                    worker_index=w, srtctl_dir=CONTAINER_SRTCTL if r.container else None))
                cmd = [*launch.command, *kv_events_args(backend.kv_events_config, role,
                                                        lambda a=node.address: ports.take(a), sizes["dp"])]
                env = {**launch.env, **hf_env, **job.role_environment(role),
                       "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))}
                profile_dir = nsys_out = None
                if job.profiling.type == "torch":
                    profile_dir = env["SGLANG_TORCH_PROFILER_DIR"] = f"{logs}/profiles/{role}"
                if job.profiling.type == "nsys":
                    nsys_out = f"{logs}/profiles/nsys_{role}_{w}_{node.name}"
                    cmd = [job.profiling.nsys_binary, "profile", "-t", "cuda,nvtx", "--cuda-graph-trace=node",
                           "-c", "cudaProfilerApi", "--capture-range-end", "stop", "-o", nsys_out, *cmd]
                name = f"{role}-{w}" + (f"-r{rank}" if len(w_nodes) > 1 else "")
                processes.append(ProcessSpec(
                    name=name, kind="worker", node=node.name, address=node.address, role=role, worker=w,
                    node_rank=rank, command=cmd, env=env, container=in_container, gpus=gpus,
                    port=launch.health_port if rank == 0 else None,
                    health_path=launch.health_path if rank == 0 else None,
                    setup_script=inp.setup_script is not None, python=worker_python, module=launch.module,
                    profile_dir=profile_dir, nsys_output=nsys_out,
                    dynamo_version=dynamo_install_spec(backend) if eng.installs_dynamo else None))
                names.append(name)
                roles_by_node[node.name].append(role)
            workers.append(WorkerSpec(
                role=role, index=w, nodes=[n.name for n in w_nodes], leader=leader.name,
                leader_address=leader.address, gpus=gpus, http_port=http_port,
                bootstrap_port=bootstrap, dist_init_port=dist_port, tp=sizes["tp"], dp=sizes["dp"], ep=sizes["ep"],
                processes=names))

    # ---- public endpoint ------------------------------------------------------------------
    frontend_python = eng.frontend_python(r, worker_python)
    if use_router:
        port, metrics_port = ports.take(head.address), ports.take(head.address)
        processes.append(ProcessSpec(
            name="router", kind="router", node=head.name, address=head.address, port=port, health_path="/health",
            container=in_container, env=dict(backend.frontend_environment),
            command=[*router_command(r, workers, worker_python, head.address, port, metrics_port),
                     *sglang_flags(backend.frontend_args)]))
        roles_by_node[head.name].append("router")
        endpoint = Endpoint(kind="router", node=head.name, address=head.address, port=port)
    else:
        multi = job.mode == "disaggregated" and backend.enable_multiple_frontends and len(nodes) > 1
        if multi:
            others = [n for n in nodes if n.name != head.name]
            count = 1 + backend.num_additional_frontends
            placement = [others[i % len(others)] for i in range(count)]
        else:
            placement = [head]
        for i, node in enumerate(placement):
            port = ports.take(node.address)
            processes.append(ProcessSpec(
                name=f"frontend-{i}", kind="frontend", node=node.name, address=node.address, port=port,
                health_path="/health", container=in_container and eng.frontend_in_container,
                command=[*frontend_command(frontend_python, node.address, port), *sglang_flags(backend.frontend_args)],
                python=frontend_python, module="dynamo.frontend",
                env={**dynamo_env_for(nats_url, etcd_url, node.address, None), **eng.frontend_env(),
                     **backend.frontend_environment},
                dynamo_version=dynamo_install_spec(backend) if eng.installs_dynamo else None))
            roles_by_node[node.name].append("frontend")
        if multi:
            port = ports.take(head.address)
            processes.append(ProcessSpec(
                name="nginx", kind="nginx", node=head.name, address=head.address, port=port, health_path="/nginx_health",
                command=nginx_command(f"{inp.log_dir}/nginx/nginx.conf", f"{inp.log_dir}/nginx")))
            roles_by_node[head.name].append("nginx")
            extra = [ports.take(head.address) for _ in range(backend.nginx_listen_ports - 1)]
            endpoint = Endpoint(kind="nginx", node=head.name, address=head.address, port=port, extra_ports=extra)
        else:
            p = processes[-1]
            endpoint = Endpoint(kind="frontend", node=p.node, address=p.address, port=p.port or 0)

    if job.benchmark.type in ("sa-bench", "trace-replay") or job.profiling.type != "none":
        roles_by_node[head.name].append("benchmark")
    for name in client_node_names(job, [n.name for n in all_nodes], r.worker_nodes):
        roles_by_node[name].append(CLIENT_ROLE)

    mounts = []
    if in_container:
        model_mount = f"{r.cluster.hf_cache_dir}:{CONTAINER_HF_CACHE}" if hf_model else f"{r.model_path}:{CONTAINER_MODEL}"
        mounts = [model_mount, f"{inp.log_dir}:{CONTAINER_LOGS}",
                  f"{inp.configs_dir or inp.srtctl_root + '/configs'}:{CONTAINER_CONFIGS}",
                  f"{inp.srtctl_root}:{CONTAINER_SRTCTL}", *job.extra_mount]
    decode_roles = ("decode",) if job.mode == "disaggregated" else ("agg",)
    return Plan(
        job_id=str(inp.job_id), mode=job.mode, engine=backend.engine, head_node=head.name,
        nodes=[NodeSpec(name=n.name, address=n.address, roles=roles_by_node[n.name]) for n in all_nodes],
        workers=workers, processes=processes, endpoint=endpoint, nats_url=nats_url, etcd_url=etcd_url,
        state_dir=state_dir, served_model_name=served, model_path=model_path, container_image=r.container, container_mounts=mounts,
        worker_srun_options=srun_option_args(job.slurm.srun_options),
        port_base=port_base, total_gpus=r.total_gpus,
        decode_gpus=sum(_role_gpus(r, x) for x in decode_roles if x in r.layouts))


def _role_gpus(r: ResolvedJob, role: str) -> int:
    return r.layouts[role].gpus_used(r.gpus_per_node)
