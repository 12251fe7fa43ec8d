"""LoadConfig: one command line both ways, one set of defaults, one builder from the job's sections."""

import math
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from srt_agent.cluster_config import ClusterConfig
from srt_agent.job_config import BenchmarkSection, ProfilingSection
from srt_agent.loadgen.config import LOAD_DEFAULTS, LoadConfig, from_argv, from_job, parser
from srt_agent.plan import NodeInfo, PlanInputs, make_plan
from srt_agent.resolved import load_job

REPO = Path(__file__).resolve().parents[3]


@settings(max_examples=200, deadline=None)
@given(
    num_prompts=st.none() | st.integers(1, 10**6), prompt_multiplier=st.floats(0.01, 1e3),
    warmup_multiplier=st.floats(0, 1e3), request_rate=st.just(math.inf) | st.floats(1e-3, 1e6),
    ratio=st.floats(0.01, 1.0), seed=st.integers(-10**9, 10**9), tokenizer=st.none() | st.just("/models/tiny"),
    processes=st.none() | st.integers(1, 64), itl=st.none() | st.floats(0.01, 1e4), http=st.sampled_from(["lean", "aiohttp"]),
    uvloop=st.booleans(), timeout=st.none() | st.floats(0.5, 1e5), gpus=st.none() | st.integers(1, 4096),
    extra=st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5), max_size=2),
    fraction=st.floats(0, 1), phase=st.none() | st.floats(1, 1e5),
)
def test_argv_round_trip_of_every_field(num_prompts, prompt_multiplier, warmup_multiplier, request_rate, ratio, seed,
                                         tokenizer, processes, itl, http, uvloop, timeout, gpus, extra, fraction,
                                         phase):
    c = LoadConfig(url="http://127.0.0.1:8000/base", model="m x", isl=7, osl=9, concurrency=3,
                   num_prompts=num_prompts, prompt_multiplier=prompt_multiplier, warmup_multiplier=warmup_multiplier,
                   request_rate=request_rate, random_range_ratio=ratio, seed=seed, tokenizer=tokenizer,
                   processes=processes, expected_itl_ms=itl, http=http, use_uvloop=uvloop, request_timeout=timeout,
                   total_gpus=gpus, decode_gpus=gpus, extra_body=extra, max_failed_fraction=fraction,
                   phase_timeout=phase)
    back, out = from_argv(c.to_argv())
    assert back == c and out is None


def test_every_field_has_its_flag_with_the_dataclass_default():
    p = parser()
    by_flag = {opt: a for a in p._actions for opt in a.option_strings}
    for f in fields(LoadConfig):
        flag = "--no-uvloop" if f.name == "use_uvloop" else "--" + f.name.replace("_", "-")
        assert flag in by_flag, f"LoadConfig.{f.name} has no CLI flag {flag}"
        if f.name not in ("use_uvloop", "phase_timeout", "extra_body") and by_flag[flag].default is not None:
            assert by_flag[flag].default == LOAD_DEFAULTS[f.name], f.name


def test_defaults_stay_off_the_command_line_and_out_goes_last():
    c = LoadConfig(url="http://h:1", model="m", isl=1, osl=2, concurrency=3)
    assert c.to_argv() == ["--url", "http://h:1", "--model", "m", "--isl", "1", "--osl", "2", "--concurrency", "3"]
    cmd = c.command("/r/result.json")
    assert cmd[:3] == [sys.executable, "-m", "srt_agent.loadgen"] and cmd[-2:] == ["--out", "/r/result.json"]
    assert from_argv(cmd[3:]) == (c, "/r/result.json")


def test_the_job_file_takes_its_defaults_from_the_load_generator():
    b = BenchmarkSection()
    for key in ("warmup_multiplier", "prompt_multiplier", "random_range_ratio", "seed", "max_failed_fraction",
                "processes", "expected_itl_ms"):
        assert getattr(b, key) == LOAD_DEFAULTS[key], key
    assert b.req_rate == "inf" and math.isinf(LOAD_DEFAULTS["request_rate"])


def plan_of(tmp_path, job: dict):
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    resolved = load_job(tmp_path / "job.yaml", ClusterConfig.model_validate(
        {"gpus_per_node": 2, "container_runtime": "none", "executor": "local"}))
    plan = make_plan(resolved, PlanInputs(job_id="0", nodes=[NodeInfo(f"n{i}", "127.0.0.1") for i in range(2)],
                                          log_dir=str(tmp_path), srtctl_root=str(REPO), host_python=sys.executable))
    return resolved.job, plan


JOB = {"name": "t", "model": {"path": "/models/tiny"}, "backend": {"engine": "sim", "use_sglang_router": True},
       "resources": {"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1, "decode_workers": 1}}


def test_a_sweep_point_from_the_benchmark_section_and_the_plan(tmp_path):
    job, plan = plan_of(tmp_path, {**JOB, "benchmark": {
        "type": "sa-bench", "isl": 100, "osl": 20, "concurrencies": [4, 8], "req_rate": 2.5, "processes": 3,
        "expected_itl_ms": 25, "warmup_multiplier": 0.5, "seed": 7, "max_failed_fraction": 0.2}})
    c = from_job(plan, benchmark=job.benchmark, concurrency=8, tokenizer="/models/tiny")
    assert (c.url, c.model, c.isl, c.osl, c.concurrency) == (plan.endpoint.url, plan.served_model_name, 100, 20, 8)
    assert (c.request_rate, c.processes, c.expected_itl_ms, c.warmup_multiplier, c.seed) == (2.5, 3, 25, 0.5, 7)
    assert (c.max_failed_fraction, c.tokenizer, c.prompt_multiplier) == (0.2, "/models/tiny", 10.0)
    assert (c.total_gpus, c.decode_gpus) == (plan.total_gpus, plan.decode_gpus)
    argv = c.to_argv()
    assert argv[argv.index("--expected-itl-ms") + 1] == "25"  # the loadgen's checks get the job's ITL
    assert from_argv(argv)[0] == c


def test_the_profiling_load_from_the_profiling_section(tmp_path):
    job, plan = plan_of(tmp_path, {**JOB, "resources": {"agg_nodes": 1, "agg_workers": 1},
                                   "benchmark": {"type": "manual"}})
    p = ProfilingSection(type="torch", isl=300, osl=20, concurrency=6)
    c = from_job(plan, profiling=p, num_prompts=40)
    assert (c.isl, c.osl, c.concurrency, c.num_prompts, c.warmup_multiplier, c.max_failed_fraction) == \
        (300, 20, 6, 40, 0, 1.0)
    assert c.decode_gpus is None and c.expected_itl_ms is None
    with pytest.raises(TypeError, match="exactly one"):
        from_job(plan, benchmark=job.benchmark, profiling=p)
