"""pydantic errors -> ConfigErrors that name file:line:key, the bad value and a fix."""

import pytest

from srt_agent.cluster_config import CloudConfig, ClusterConfig
from srt_agent.errors import ConfigError, ConfigErrors
from srt_agent.job_config import BackendSection, JobConfig, SglangConfig
from srt_agent.validation import did_you_mean, model_at, validate_document
from srt_agent.yaml_source import parse_yaml

JOB = """\
name: t
model:
  path: /models/m
resources:
  prefill_nodes: 1
  decode_nodes: 1
  prefill_workers: 1
  decode_workers: 1
"""


def errors_of(model, text, path="job.yaml"):
    with pytest.raises(ConfigError) as info:
        validate_document(model, parse_yaml(text, path))
    err = info.value
    assert isinstance(err, ConfigErrors)
    return err


def test_did_you_mean():
    assert did_you_mean("enable_multiple_frontend", ["enable_multiple_frontends", "engine"]) == "enable_multiple_frontends"
    assert did_you_mean("zzzz", ["prefill", "decode"]) is None


def test_model_at_walks_nested_models_and_optionals():
    assert model_at(JobConfig, ()) is JobConfig
    assert model_at(JobConfig, ("backend",)) is BackendSection
    assert model_at(JobConfig, ("backend", "sglang_config")) is SglangConfig
    assert model_at(ClusterConfig, ("cloud",)) is CloudConfig  # CloudConfig | None
    assert model_at(JobConfig, ("name",)) is None
    assert model_at(JobConfig, ("nope", "deeper")) is None


def test_unknown_top_level_key_with_suggestion_and_line():
    err = errors_of(JobConfig, JOB + "benchmrk:\n  type: manual\n")
    assert err.line == 9 and err.key == "benchmrk"
    text = str(err)
    assert text.startswith("job.yaml:9: benchmrk: unknown key 'benchmrk'")
    assert "did you mean 'benchmark'?" in text


def test_unknown_nested_key_lists_allowed_keys():
    err = errors_of(JobConfig, JOB.replace("  decode_workers: 1\n", "  decode_workers: 1\n  gpus_per_nod: 4\n"))
    assert err.key == "resources.gpus_per_nod" and err.line == 9
    assert "did you mean 'gpus_per_node'?" in str(err)
    assert "allowed:" in str(err) and "agg_workers" in str(err)


def test_unknown_key_without_close_match_says_remove():
    err = errors_of(JobConfig, JOB + "slurm:\n  qqqqqq: 1\n")
    assert err.key == "slurm.qqqqqq" and err.line == 10
    assert "remove it; allowed keys here: account, max_requeues, partition, sbatch_directives, srun_options, time_limit" in str(err)


def test_several_errors_reported_together():
    err = errors_of(JobConfig, JOB + "slurm:\n  acount: a\nbenchmark:\n  isl: 0\n")
    keys = [e.key for e in err.errors]
    assert sorted(keys) == ["benchmark.isl", "slurm.acount"]
    lines = str(err).splitlines()
    assert any(line.startswith("job.yaml:10: slurm.acount:") for line in lines)
    assert any(line.startswith("job.yaml:12: benchmark.isl:") for line in lines)


def test_missing_required_key():
    err = errors_of(JobConfig, "name: x\nresources:\n  agg_nodes: 1\n  agg_workers: 1\n")
    assert err.key == "model" and "required key is missing" in str(err)
    assert "add 'model:'" in str(err)


def test_literal_error_lists_choices():
    err = errors_of(JobConfig, JOB + "backend:\n  engine: vllm\n")
    assert err.key == "backend.engine" and err.line == 10
    assert "'vllm'" in str(err) and "fix: use one of:" in str(err) and "'sglang'" in str(err)


def test_bad_type_shows_value():
    err = errors_of(JobConfig, JOB + "benchmark:\n  seed: lots\n")
    assert err.key == "benchmark.seed" and "'lots'" in str(err)


def test_model_validator_error_points_at_section():
    err = errors_of(JobConfig, JOB + "  agg_nodes: 1\n")
    assert err.key == "resources" and err.line == 4
    assert "cannot be mixed" in str(err)
    assert "Value error" not in str(err)


def test_top_level_must_be_a_mapping():
    with pytest.raises(ConfigError) as info:
        validate_document(JobConfig, parse_yaml("- a\n- b\n", "list.yaml"))
    assert "mapping" in str(info.value) and str(info.value).startswith("list.yaml:1:")


def test_empty_file_reports_missing_keys():
    err = errors_of(JobConfig, "")
    assert sorted(e.key for e in err.errors) == ["model", "name", "resources"]
