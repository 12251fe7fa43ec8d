"""The job file model on its own: modes, sections, value checks and normalisation."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from srt_agent.errors import ConfigError
from srt_agent.job_config import JobConfig, parse_concurrencies
from srt_agent.validation import validate_document
from srt_agent.yaml_source import load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
DISAGG = {"prefill_nodes": 1, "decode_nodes": 2, "prefill_workers": 1, "decode_workers": 1}


def job(**over):
    data = {"name": "t", "model": {"path": "/m"}, "resources": dict(DISAGG)}
    for key, value in over.items():
        data[key] = value
    return JobConfig.model_validate(data)


def invalid(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate_document(JobConfig, parse_yaml(text, "job.yaml"))
    return info.value


def test_seed_example_parses():
    j = validate_document(JobConfig, load_yaml(ROOT / "configs" / "my-job.yaml"))
    assert j.name == "my-benchmark" and j.mode == "disaggregated"
    assert j.roles == ["prefill", "decode"]
    assert j.role_counts("prefill") == (1, 1) and j.role_counts("decode") == (2, 1)
    assert j.total_nodes == 3
    assert j.extra_mount == ["/local-dir1:/container-dir1", "/local-dir2:/container-dir2"]
    assert j.role_flags("decode")["enable-dp-attention"] is True
    assert j.role_environment("prefill") == {"TORCH_DISTRIBUTED_DEFAULT_TIMEOUT": "1800"}
    assert j.benchmark.concurrencies == [256, 512] and j.benchmark.req_rate == "inf"


def test_defaults():
    j = job()
    assert j.backend.engine == "sglang" and j.backend.enable_multiple_frontends
    assert j.backend.num_additional_frontends == 9 and not j.backend.use_sglang_router
    assert j.benchmark.type == "manual" and j.profiling.type == "none"
    assert j.benchmark.warmup_multiplier == 2 and j.benchmark.prompt_multiplier == 10
    assert j.health.worker_timeout_s >= 1800  # slow cold starts are normal
    assert j.backend.nats_max_payload == "64MB"


def test_aggregated_mode():
    j = job(resources={"agg_nodes": 2, "agg_workers": 4})
    assert j.mode == "aggregated" and j.roles == ["agg"] and j.role_counts("agg") == (2, 4)
    assert j.total_nodes == 2


def test_mixed_agg_and_disagg_is_an_error():
    err = invalid("name: t\nmodel:\n  path: /m\nresources:\n  prefill_nodes: 1\n  decode_nodes: 1\n"
                  "  prefill_workers: 1\n  decode_workers: 1\n  agg_workers: 2\n")
    assert err.key == "resources" and err.line == 4 and "cannot be mixed" in str(err)


@pytest.mark.parametrize("resources, needle", [
    ({"prefill_nodes": 1, "decode_nodes": 1, "prefill_workers": 1}, "decode_workers"),
    ({"agg_nodes": 1}, "needs both agg_nodes and agg_workers"),
    ({}, "prefill_nodes, decode_nodes, prefill_workers, decode_workers"),
])
def test_incomplete_resources(resources, needle):
    with pytest.raises(ValidationError) as info:
        job(resources=resources)
    assert needle in str(info.value)


@pytest.mark.parametrize("key", ["prefill_nodes", "decode_workers", "gpus_per_node"])
def test_counts_must_be_positive(key):
    with pytest.raises(ValidationError):
        job(resources={**DISAGG, key: 0})


def test_sglang_config_keys_are_kebab_case():
    j = job(backend={"sglang_config": {"prefill": {"mem_fraction_static": 0.8, "--chunked-prefill-size": 4096},
                                       "decode": None}})
    assert j.role_flags("prefill") == {"mem-fraction-static": 0.8, "chunked-prefill-size": 4096}
    assert j.role_flags("decode") == {}


def test_unknown_sglang_config_section_suggests():
    err = invalid("name: t\nmodel:\n  path: /m\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
                  "backend:\n  sglang_config:\n    agg:\n      tp-size: 4\n")
    assert err.key == "backend.sglang_config.agg" and err.line == 9


def test_environment_values_become_strings():
    j = job(backend={"prefill_environment": {"A": 1, "B": True, "C": None, "D": "x y"}})
    assert j.role_environment("prefill") == {"A": "1", "B": "true", "C": "", "D": "x y"}


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "$(x)", ""])
def test_environment_names_must_be_identifiers(name):
    with pytest.raises(ValidationError) as info:
        job(backend={"decode_environment": {name: "v"}})
    assert "not a valid environment variable name" in str(info.value)


@pytest.mark.parametrize("value, ok", [("64MB", True), ("8388608", True), ("1 GB", True), ("64mb", True),
                                       ("lots", False), ("64MB; x", False)])
def test_nats_max_payload(value, ok):
    if ok:
        assert job(backend={"nats_max_payload": value}).backend.nats_max_payload == value
    else:
        with pytest.raises(ValidationError):
            job(backend={"nats_max_payload": value})


@pytest.mark.parametrize("value, expected", [
    ([1, 2, 4], [1, 2, 4]), ("64x128x256", [64, 128, 256]), ("8, 16", [8, 16]), (32, [32]),
])
def test_concurrencies_forms(value, expected):
    assert parse_concurrencies(value) == expected
    b = job(benchmark={"type": "sa-bench", "isl": 1, "osl": 1, "concurrencies": value}).benchmark
    assert b.concurrencies == expected


@pytest.mark.parametrize("value", [[], [0], [-4], ["a"], [True], "64xabc", 1.5, {"a": 1}])
def test_bad_concurrencies(value):
    with pytest.raises((ValueError, ValidationError)):
        job(benchmark={"type": "sa-bench", "isl": 1, "osl": 1, "concurrencies": value})


def test_sa_bench_needs_lengths_and_concurrencies():
    with pytest.raises(ValidationError) as info:
        job(benchmark={"type": "sa-bench", "isl": 1024})
    assert "osl, concurrencies" in str(info.value)


@pytest.mark.parametrize("rate, expected", [("inf", "inf"), ("INF", "inf"), ("infinity", "inf"), (12.5, 12.5)])
def test_req_rate(rate, expected):
    assert job(benchmark={"req_rate": rate}).benchmark.req_rate == expected


@pytest.mark.parametrize("rate", [0, -1, "fast"])
def test_bad_req_rate(rate):
    with pytest.raises(ValidationError):
        job(benchmark={"req_rate": rate})


def test_profiling_steps():
    p = job(profiling={"type": "nsys", "start_step": 5, "stop_step": 10}).profiling
    assert (p.type, p.start_step, p.stop_step) == ("nsys", 5, 10)
    with pytest.raises(ValidationError) as info:
        job(profiling={"type": "torch", "start_step": 10, "stop_step": 10})
    assert "stop_step must be greater than start_step" in str(info.value)


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07", ""])
def test_name_rejects_control_characters_and_empty(name):
    with pytest.raises(ValidationError):
        job(name=name)


def test_name_allows_unicode_and_shell_characters():
    assert job(name="ds-r1 'quoted' $(x) `y`; é").name == "ds-r1 'quoted' $(x) `y`; é"


@pytest.mark.parametrize("mount", ["/a:/b", "/a:/b:ro", "/with space:/c d"])
def test_extra_mount_ok(mount):
    assert job(extra_mount=[mount]).extra_mount == [mount]


@pytest.mark.parametrize("mount", ["a:/b", "/a", "/a:b", "/a:/b:ro:x", "/a,/x:/b", "/a\n:/b"])
def test_extra_mount_bad(mount):
    with pytest.raises(ValidationError):
        job(extra_mount=[mount])


def test_time_limit_checked_in_job_file():
    err = invalid("name: t\nmodel:\n  path: /m\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n"
                  "slurm:\n  time_limit: 2h\n")
    assert err.key == "slurm.time_limit" and err.line == 8 and "HH:MM:SS" in str(err)


def test_sbatch_directives_are_validated():
    import pytest as _pytest
    from pydantic import ValidationError

    from srt_agent.job_config import SlurmSection

    s = SlurmSection(sbatch_directives={"--comment": "a b", "mem": 0, "exclusive-user": None})
    assert s.sbatch_directives == {"comment": "a b", "mem": "0", "exclusive-user": None}
    for bad in ({"time": "1"}, {"comment": "a\n#SBATCH --x"}, {"Bad Name": "1"}, {"output": "/x"}):
        with _pytest.raises(ValidationError):
            SlurmSection(sbatch_directives=bad)
