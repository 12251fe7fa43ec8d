"""Secrets never reach a file srtctl writes: engine flags that look secret are refused, credentials
in the S3 endpoint URL are refused, and an escaped secret in the job file is still redacted."""

from __future__ import annotations

import pytest
import yaml

from launcher.prepare import prepare
from srt_agent.cluster_config import ClusterConfig
from srt_agent.errors import ConfigError
from srt_agent.resolved import load_job_text

JOB = {"name": "s", "model": {"path": "/models/x"},
       "resources": {"agg_nodes": 1, "agg_workers": 1, "gpus_per_node": 4},
       "backend": {"engine": "sim", "use_sglang_router": True}}
LOCAL = ClusterConfig(executor="local", container_runtime="none")


def test_secret_looking_engine_flag_is_refused():
    job = {**JOB, "backend": {**JOB["backend"], "sglang_config": {"aggregated": {"api-key": "sk-123456"}}}}
    with pytest.raises(ConfigError) as e:
        load_job_text(yaml.safe_dump(job), LOCAL, "job.yaml")
    assert "backend.sglang_config.aggregated.api-key" in str(e.value) and "_environment" in str(e.value)


def test_endpoint_url_with_credentials_is_refused(tmp_path):
    from srt_agent.cluster_config import load_cluster_config

    path = tmp_path / "srtslurm.yaml"
    path.write_text(yaml.safe_dump({"cloud": {"endpoint_url": "https://AKIAX:pw@s3.example", "bucket": "b"}}))
    with pytest.raises(ConfigError) as e:
        load_cluster_config(path)
    assert "cloud.endpoint_url" in str(e.value) and "AWS_ACCESS_KEY_ID" in str(e.value)
    assert "pw@" not in str(e.value).split("got", 1)[0]


def test_escaped_secret_is_redacted_in_the_job_copy(tmp_path, monkeypatch):
    secret = 'hf_abc"def\\\\ghi'
    text = ("name: s\nmodel: {path: /models/x}\nresources: {agg_nodes: 1, agg_workers: 1, gpus_per_node: 4}\n"
            "backend:\n  engine: sim\n  use_sglang_router: true\n  aggregated_environment:\n"
            '    HF_TOKEN: "hf_abc\\"def\\\\\\\\ghi"\n')
    job = tmp_path / "job.yaml"
    job.write_text(text)
    assert yaml.safe_load(text)["backend"]["aggregated_environment"]["HF_TOKEN"] == secret
    cluster = tmp_path / "srtslurm.yaml"
    cluster.write_text(yaml.safe_dump({"executor": "local", "container_runtime": "none"}))
    monkeypatch.chdir(tmp_path)
    prep = prepare(job, cluster_file=cluster)
    for name, content in prep.files.items():
        assert secret not in content and 'abc\\"def' not in content, name
    assert yaml.safe_load(prep.files["job.yaml"])["backend"]["aggregated_environment"]["HF_TOKEN"] == "***"
    assert prep.secrets == {"aggregated_environment": {"HF_TOKEN": secret}}
