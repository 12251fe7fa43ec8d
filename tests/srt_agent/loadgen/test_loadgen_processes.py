"""The default process count follows the expected event rate, bounded by the cores."""

import math

from srt_agent.loadgen.runner import EVENTS_PER_PROCESS, LoadConfig, auto_processes, expected_event_rate


def test_event_rate_from_concurrency_osl_and_itl():
    events, requests = expected_event_rate(1024, 256, 20.0)
    assert events == 1024 / 0.020 and math.isclose(requests, 1024 / (256 * 0.020))
    assert expected_event_rate(1024, 256, 20.0, request_rate=10.0) == (10.0 * 256, 10.0)


def test_low_event_rate_takes_one_process_and_high_rate_takes_the_cores():
    assert auto_processes(64, 256, 20.0, cores=8) == 1  # 3,200 events/s
    assert auto_processes(4096, 256, 80.0, cores=8) == math.ceil(4096 / 0.080 / EVENTS_PER_PROCESS)
    assert auto_processes(8192, 256, 1.0, cores=8) == 8  # capped by the cores
    assert auto_processes(3, 256, 0.01, cores=8) == 3  # never more than the concurrency
    # the same concurrency needs fewer processes when tokens come slower
    assert auto_processes(2048, 256, 10.0, cores=16) > auto_processes(2048, 256, 80.0, cores=16)


def test_config_uses_it_unless_processes_is_given():
    cfg = LoadConfig(url="http://127.0.0.1:1", model="m", isl=8, osl=256, concurrency=64, expected_itl_ms=20.0)
    assert cfg.resolved_processes() == 1
    cfg.processes = 2
    assert cfg.resolved_processes() == 2
