"""The default process count follows the expected event rate, bounded by the usable cores
(affinity and cgroup quota, read from file trees laid out like /sys/fs/cgroup and /proc/self)."""

import math
import os

from srt_agent.loadgen.config import LoadConfig
from srt_agent.loadgen.sizing import (BURST_SLOTS_PER_PROCESS, EVENTS_PER_PROCESS, auto_processes, cgroup_cpu_quota,
                                      expected_event_rate, usable_cores)


def test_event_rate_from_concurrency_osl_and_itl():
    events, requests = expected_event_rate(1024, 256, 20.0)
    assert events == 1024 / 0.020 and math.isclose(requests, 1024 / (256 * 0.020))
    assert expected_event_rate(1024, 256, 20.0, request_rate=10.0) == (10.0 * 256, 10.0)


def test_low_event_rate_takes_one_process_and_high_rate_takes_the_cores():
    assert auto_processes(64, 256, 20.0, cores=8) == 1  # 3,200 events/s
    assert auto_processes(1024, 256, 2.0, cores=64) == math.ceil(1024 / 0.002 / EVENTS_PER_PROCESS)  # 18
    assert auto_processes(8192, 256, 1.0, cores=8) == 8  # capped by the cores
    assert auto_processes(3, 256, 0.01, cores=8) == 3  # never more than the concurrency
    # the same concurrency needs fewer processes when tokens come slower
    assert auto_processes(1024, 256, 2.0, cores=64) > auto_processes(1024, 256, 20.0, cores=64) == 8  # the burst


def test_a_closed_loop_wave_is_split_so_no_process_sends_more_than_its_burst():
    # 4096 slots at 160 ms: 25,600 events/s (one process) but a 4096-request first wave
    assert auto_processes(4096, 256, 160.0, cores=64) == 4096 // BURST_SLOTS_PER_PROCESS
    assert auto_processes(4096, 256, 160.0, cores=64, request_rate=50.0) == 1  # Poisson: no wave


def test_config_uses_it_unless_processes_is_given():
    cfg = LoadConfig(url="http://127.0.0.1:1", model="m", isl=8, osl=256, concurrency=64, expected_itl_ms=20.0)
    assert cfg.resolved_processes() == 1
    cfg.processes = 2
    assert cfg.resolved_processes() == 2


def tree(tmp_path, cgroup_lines, files):
    (tmp_path / "proc").mkdir(parents=True)
    (tmp_path / "proc" / "cgroup").write_text("".join(line + "\n" for line in cgroup_lines))
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "cg", tmp_path / "proc"


def test_cgroup_v2_quota_nearest_limited_ancestor(tmp_path):
    root, proc = tree(tmp_path, ["0::/job/step"], {"job/cpu.max": "150000 100000\n", "job/step/cpu.max": "max 100000\n"})
    assert cgroup_cpu_quota(root, proc) == 1.5
    assert usable_cores(root, proc) == min(len(os.sched_getaffinity(0)), 2)


def test_cgroup_v1_quota_and_unlimited(tmp_path):
    root, proc = tree(tmp_path, ["4:memory:/x", "2:cpu,cpuacct:/slurm/job1"],
                      {"cpu,cpuacct/slurm/job1/cpu.cfs_quota_us": "100000\n",
                       "cpu,cpuacct/slurm/job1/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_quota(root, proc) == 1.0 and usable_cores(root, proc) == 1
    root, proc = tree(tmp_path / "b", ["1:cpu:/"], {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_quota(root, proc) is None
    assert usable_cores(root, proc) == len(os.sched_getaffinity(0))


def test_no_cgroup_information_means_no_limit(tmp_path):
    assert cgroup_cpu_quota(tmp_path / "none", tmp_path / "none") is None
