"""What every engine supplies, and the two endpoints an engine can sit behind.

An engine is one class (see docs/architecture.md, "Engine seam"): the plan asks it for each
worker node's command (`worker_command`), the preflight for its `--help` (`help_command`), the
health phase whether the endpoint sees every worker (`registered`), the profiling phase where a
worker's profiler is controlled (`profile_control_url`), and the submit-time flag check which
option lists hold its vocabulary (`flag_vocabulary`). Engines are stateless; pure apart from
`registered`, which asks the running endpoint over HTTP.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from ..dynamo import dynamo_env, parse_frontend_health
from ..errors import ConfigError, ProfilingError

if TYPE_CHECKING:
    import httpx

    from ..job_config import JobConfig
    from ..plan import Plan, ProcessSpec, WorkerSpec
    from ..resolved import ResolvedJob
    from ..yaml_source import YamlDocument


class WorkerArgs(NamedTuple):
    """Everything the plan decided about one node of one worker."""

    r: ResolvedJob
    role: str
    python: str
    model_path: str
    served: str
    host: str
    http_port: int | None
    bootstrap: int | None
    tp: int
    nnodes: int
    rank: int
    dist: str | None  # leader's "address:port" of a multi-node worker
    user_flags: list[str]  # the role's sglang_config as flags, without the ones the plan owns
    nats_url: str | None
    etcd_url: str | None
    system_port: int | None
    worker_index: int
    srtctl_dir: str | None = None  # srt_agent's checkout as the worker sees it (containers), for PYTHONPATH

    def mode_flags(self) -> list[str]:
        if self.role not in ("prefill", "decode"):
            return []
        flags = ["--disaggregation-mode", self.role]
        if self.bootstrap is not None:
            flags += ["--disaggregation-bootstrap-port", str(self.bootstrap)]
        return flags

    def multi_node_flags(self) -> list[str]:
        return ["--dist-init-addr", self.dist, "--nnodes", str(self.nnodes), "--node-rank", str(self.rank)] \
            if self.dist else []

    def common_flags(self) -> list[str]:
        return ["--model-path", self.model_path, "--served-model-name", self.served, "--tp-size", str(self.tp)]

    def dynamo_env(self) -> dict[str, str]:
        return dynamo_env_for(self.nats_url, self.etcd_url, self.host, self.system_port)


class WorkerLaunch(NamedTuple):
    """What the engine answers for one worker node."""

    command: list[str]
    env: dict[str, str]
    health_port: int | None = None
    health_path: str = "/health"
    module: str | None = None  # the `python -m MODULE` the command runs (the preflight's `--help`)


def dynamo_env_for(nats_url: str | None, etcd_url: str | None, host: str,
                      system_port: int | None) -> dict[str, str]:
    """Dynamo's environment for a process on `host`; {} when the job runs no NATS/etcd."""
    if nats_url is None or etcd_url is None:
        return {}
    return dynamo_env(nats_url=nats_url, etcd_url=etcd_url, system_port=system_port, host=host)


def user_set(flags: dict, name: str) -> bool:
    """The user's sglang_config has flag `name` however spelled (kebab, snake, leading --)."""
    return any(str(k).lstrip("-").replace("_", "-") == name for k in flags)


def count_expected(plan: Plan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for w in plan.workers:
        counts[w.role] = counts.get(w.role, 0) + 1
    return counts


class Engine:
    """One engine behind one kind of endpoint. Subclasses set the class attributes and worker_command."""

    name: ClassVar[str]  # unique id, e.g. "sglang-dynamo"
    engine: ClassVar[str]  # the backend.engine value
    behind_router: ClassVar[bool]  # True: the sglang router; False: Dynamo frontends (+ NATS, etcd, nginx)
    worker_http_port: ClassVar[bool] = False  # the worker serves HTTP itself (router, profiling)
    worker_system_port: ClassVar[bool] = False  # the worker runs Dynamo's system server (health, metrics)
    installs_dynamo: ClassVar[bool] = False  # workers and frontends install backend.dynamo_version
    frontend_in_container: ClassVar[bool] = True  # Dynamo frontends run in the job's container
    flag_vocabulary: ClassVar[tuple[str, ...]] = ()  # engine_options/<kind>-<version>.json lists checked at submit
    profile_404_hint: ClassVar[str] = ""  # said when start_profile answers 404

    def worker_command(self, a: WorkerArgs) -> WorkerLaunch:
        raise NotImplementedError

    def help_command(self, worker: ProcessSpec) -> list[str] | None:
        """`--help` of the engine the worker runs (preflight's flag check); None: the engine takes no sglang flags."""
        if worker.module is None:
            return None
        return [worker.python or "python3", "-m", worker.module, "--help"]

    def job_errors(self, job: JobConfig, doc: YamlDocument) -> list[ConfigError]:
        """Settings this engine cannot honour (checked when the job is resolved)."""
        return []

    def endpoint_error(self, doc: YamlDocument) -> ConfigError:
        """The job puts this engine behind the other kind of endpoint (only one engine object exists for it)."""
        other = "Dynamo frontends" if self.behind_router else "the sglang router"
        return ConfigError(f"the {self.engine} engine does not run behind {other}", file=doc.path,
                           line=doc.line_of(("backend", "use_sglang_router")), key="backend.use_sglang_router",
                           hint=f"set use_sglang_router: {'true' if self.behind_router else 'false'}")

    def profile_control_url(self, plan: Plan, worker: WorkerSpec) -> str:
        """Base URL of `worker`'s profiler control ("/start_profile", "/stop_profile" appended)."""
        if worker.url is None:
            raise ProfilingError(
                f"{worker.name}: the worker has no HTTP port to receive /start_profile; profiling needs "
                f"backend.use_sglang_router: true or backend.engine: sim")
        return worker.url


    # ---- Dynamo frontends (engines behind them) ------------------------------------------------

    def frontend_python(self, r: ResolvedJob, default: str) -> str:
        return default

    def frontend_env(self) -> dict[str, str]:
        return {}

    # ---- registration --------------------------------------------------------------------------

    async def registered(self, client: httpx.AsyncClient, plan: Plan) -> tuple[bool, dict]:
        """(does the endpoint see every worker, what it saw)."""
        raise NotImplementedError


class RouterEndpoint(Engine):
    """Behind the sglang router: registered once the router's /workers lists every worker."""

    behind_router = True
    worker_http_port = True

    async def registered(self, client: httpx.AsyncClient, plan: Plan) -> tuple[bool, dict]:
        import httpx  # lazy: the plan (and so `srtctl dry-run`) imports this module, only the agent asks

        router = plan.by_kind("router")[0]
        try:
            r = await client.get(f"http://{router.address}:{router.port}/workers")
            last = {"router_workers": router_worker_count(r.json())} if r.status_code == 200 else {}
        except (httpx.HTTPError, json.JSONDecodeError):
            last = {}
        return last.get("router_workers", 0) >= len(plan.workers), last


class DynamoEndpoint(Engine):
    """Behind Dynamo frontends: registered once every frontend's /health lists every worker's instance."""

    behind_router = False
    worker_system_port = True

    async def registered(self, client: httpx.AsyncClient, plan: Plan) -> tuple[bool, dict]:
        import httpx  # lazy: the plan (and so `srtctl dry-run`) imports this module, only the agent asks

        expected = count_expected(plan)
        want_decode = expected.get("decode", 0) + expected.get("agg", 0)
        ok, last = True, {}
        for f in plan.frontends:
            try:
                r = await client.get(f"http://{f.address}:{f.port}/health")
                health = parse_frontend_health(r.content)
            except httpx.HTTPError:
                health = None
            last[f.name] = {"prefill": health.prefill, "decode": health.decode} if health else {}
            if health is None or not health.has(prefill=expected.get("prefill", 0), decode=want_decode):
                ok = False
        return ok, last


def router_worker_count(data) -> int:
    """Workers in the sglang router's /workers answer (its shape changed between releases)."""
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        for key in ("workers", "urls"):
            if isinstance(data.get(key), list):
                return len(data[key])
        total = 0
        for key in ("prefill", "decode", "prefill_urls", "decode_urls", "regular"):
            if isinstance(data.get(key), list):
                total += len(data[key])
        if "stats" in data and isinstance(data["stats"], dict):
            n = data["stats"].get("total_workers")
            if isinstance(n, int):
                return max(total, n)
        return total
    return 0
