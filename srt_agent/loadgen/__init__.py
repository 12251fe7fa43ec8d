"""The benchmark load generator: streamed /v1/completions at a fixed concurrency or request rate.

    from srt_agent.loadgen import LoadConfig, run_point, check_point, write_result
    result = check_point(run_point(LoadConfig(url="http://127.0.0.1:8000", model="m",
                                              isl=1024, osl=1024, concurrency=64)))

CLI: python -m srt_agent.loadgen --help. Metric definitions: docs/benchmarking.md.

The names below are imported on first use (PEP 562), not with the package: job_config.py imports
srt_agent.loadgen.config for the defaults, and the CLI's start-up must not pay for asyncio and
the HTTP client.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ItlHistogram": ".records",
    "LoadConfig": ".config",
    "RequestRecord": ".records",
    "check_point": ".validity",
    "from_job": ".config",
    "run_point": ".runner",
    "run_trace": ".trace_runner",
    "summarize": ".metrics",
    "write_result": ".runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
