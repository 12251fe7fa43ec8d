"""The engine seam: one object per engine (and the endpoint it sits behind).

    engine_for(job.backend)  -> the Engine a job runs (backend.engine + backend.use_sglang_router)
    engine_of(plan)          -> the same Engine, from a plan.json
    job_errors(job, doc)     -> what the chosen engine refuses (resolve time)

Adding an engine (vLLM, TRT-LLM): one module here with an Engine subclass (see base.py and
docs/architecture.md, "Engine seam"), listed in ENGINES, plus its name in job_config's
backend.engine choices.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DynamoEndpoint, Engine, RouterEndpoint, WorkerArgs, WorkerLaunch
from .mocker import MockerEngine
from .sglang import SglangDynamo, SglangRouter
from .sim import SimEngine

if TYPE_CHECKING:
    from ..errors import ConfigError
    from ..job_config import JobConfig
    from ..plan import Plan
    from ..yaml_source import YamlDocument

ENGINES: tuple[Engine, ...] = (SglangDynamo(), SglangRouter(), SimEngine(), MockerEngine())
_BY_KEY = {(e.engine, e.behind_router): e for e in ENGINES}

__all__ = ["ENGINES", "DynamoEndpoint", "Engine", "RouterEndpoint", "WorkerArgs", "WorkerLaunch", "engine_for",
           "engine_named", "engine_of", "job_errors"]


def engine_named(engine: str, behind_router: bool) -> Engine | None:
    """The engine `engine` behind the router (True) or Dynamo frontends (False); None if it cannot run there."""
    return _BY_KEY.get((engine, behind_router))


def _any_named(engine: str) -> Engine:
    for e in ENGINES:
        if e.engine == engine:
            return e
    raise KeyError(f"unknown engine {engine!r}; known: {', '.join(sorted({e.engine for e in ENGINES}))}")


def engine_for(backend) -> Engine:
    """The Engine of a job's backend section (resolve_job has refused combinations that do not exist)."""
    return engine_named(backend.engine, backend.use_sglang_router) or _any_named(backend.engine)


def engine_of(plan: Plan) -> Engine:
    """The Engine a plan was made for."""
    return engine_named(plan.engine, plan.endpoint.kind == "router") or _any_named(plan.engine)


def job_errors(job: JobConfig, doc: YamlDocument) -> list[ConfigError]:
    """The engine's own refusals, then the endpoint it cannot run behind."""
    engine = engine_for(job.backend)
    errors = engine.job_errors(job, doc)
    if engine_named(job.backend.engine, job.backend.use_sglang_router) is None:
        errors.append(engine.endpoint_error(doc))
    return errors
