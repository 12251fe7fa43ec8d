"""The benchmark load generator: streamed /v1/completions at a fixed concurrency or request rate.

    from srt_agent.loadgen import LoadConfig, run_point, check_point, write_result
    result = check_point(run_point(LoadConfig(url="http://127.0.0.1:8000", model="m",
                                              isl=1024, osl=1024, concurrency=64)))

CLI: python -m srt_agent.loadgen --help. Metric definitions: docs/benchmarking.md.
"""

from .metrics import summarize
from .records import ItlHistogram, RequestRecord
from .runner import LoadConfig, run_point, write_result
from .validity import check_point

__all__ = [
           "ItlHistogram",
           "LoadConfig",
           "RequestRecord",
           "check_point",
           "run_point",
           "summarize",
           "write_result",
]
