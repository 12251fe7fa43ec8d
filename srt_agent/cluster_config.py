"""The cluster file `srtslurm.yaml`: site defaults, aliases and compatibility switches."""
# no `from __future__ import annotations`: pydantic reads the field types as objects, not strings to compile
# (CLI start-up); quote a forward reference (-> "Model") and import at run time what an annotation names

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import ConfigError
from .validation import validate_document
from .yaml_source import load_yaml

CLUSTER_FILE_NAME = "srtslurm.yaml"
CLUSTER_FILE_ENV = "SRTSLURM_CONFIG"

_TIME_RE = re.compile(r"^(\d+-)?\d{1,3}(:\d{1,2}){0,2}$")


def check_time_limit(value: str | None) -> str | None:
    if value is None:
        return None
    value = str(value)
    if not _TIME_RE.fullmatch(value):
        raise ValueError("time limit must look like HH:MM:SS, MM, or D-HH:MM:SS")
    return value


def check_sbatch_text(value: str | None) -> str | None:
    """Account and partition names end up on #SBATCH lines, which sbatch reads one line at a time."""
    if value is not None and any(ord(c) < 32 or ord(c) == 127 for c in str(value)):
        raise ValueError("must not contain line breaks or control characters (it goes on an #SBATCH line)")
    return value


def new_list() -> list:
    """default_factory of the models' list fields, the same as `list`: a Python function's signature, which
    pydantic reads to see whether the factory wants the validated data, is quick to read, while a builtin's
    is parsed from its text with the tokenizer (CLI start-up: ~2 ms of a dry-run for six fields)."""
    return []


class Strict(BaseModel):
    """Base for every config model: unknown keys are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False, validate_default=True)


class CloudConfig(Strict):
    """S3-compatible storage for results (`make sync-to-cloud`, `srtctl sync`)."""

    endpoint_url: str | None = Field(None, description="S3 endpoint URL; omit for AWS S3")
    bucket: str = Field(..., description="bucket that receives the results")
    prefix: str = Field("", description="key prefix inside the bucket, e.g. 'my-team/'")
    region: str | None = Field(None, description="region name, if the endpoint needs one")
    sync_on_finish: bool = Field(False, description="the agent uploads the run directory when the job ends")

    @field_validator("endpoint_url")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        from urllib.parse import urlsplit

        if v is not None and (urlsplit(v).username or urlsplit(v).password):
            raise ValueError("endpoint_url must not carry credentials; use the standard AWS sources "
                             "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws/credentials, AWS_PROFILE)")
        return v


class ClusterConfig(Strict):
    """Everything site-specific; job files stay portable between clusters."""

    default_account: str | None = Field(None, description="SLURM account used when the job file sets none")
    default_partition: str | None = Field(None, description="SLURM partition used when the job file sets none")
    default_time_limit: str | None = Field(None, description="time limit used when the job file sets none")
    gpus_per_node: int = Field(4, ge=1, le=64, description="GPUs per node on this cluster")
    use_gpus_per_node_directive: bool = Field(True, description="emit `#SBATCH --gpus-per-node`; false if the cluster rejects it")
    use_segment_sbatch_directive: bool = Field(True, description="emit `#SBATCH --segment`; false if the cluster rejects it")
    srtctl_root: str | None = Field(None, description="path of the srt-slurm checkout (auto-set by make setup; default: the checkout srtctl runs from, or the current directory for an installed wheel)")
    model_paths: dict[str, str] = Field(default_factory=dict, description="model alias -> absolute path")
    containers: dict[str, str] = Field(default_factory=dict, description="container alias -> .sqsh image path")
    cloud: CloudConfig | None = Field(None, description="S3-compatible result storage (optional)")
    executor: Literal["slurm", "local"] = Field("slurm", description="`local` runs jobs on this machine without SLURM")
    container_runtime: Literal["pyxis", "none"] = Field("pyxis", description="`none` runs processes on the host")
    python: str | None = Field(None, description="python of the agent and of host processes (container_runtime none, or a job's model.container: none without model.python); default: srtctl's own")
    dynamo_venv: str | None = Field(None, description="existing venv with Dynamo; used as is, nothing is installed")
    node_addresses: Literal["probe", "loopback"] = Field("probe", description="`probe`: each node's first address; `loopback`: 127.0.0.1 (single-host test clusters)")
    hf_cache_dir: str | None = Field(None, description="shared Hugging Face cache directory (absolute) for `model.path: hf:org/model`; mounted in every container as HF_HOME")
    logs_dir: str | None = Field(None, description="where run directories go; default: ./logs (relative to where srtctl runs)")
    node_local_dir: str | None = Field(None, description="node-local disk for etcd's data and NATS's JetStream store (in `srt-<jobid>/`, removed at teardown); default: `$SLURM_TMPDIR`, else `/tmp`")
    eval_datasets_dir: str | None = Field(None, description="shared directory of eval datasets for converted srt-slurm (v1) recipes: `gsm8k/test.jsonl`, `mmlu/` (dev/, test/), `gpqa/gpqa_diamond.csv` (docs/migrating.md)")

    _source: str | None = None

    @field_validator("default_time_limit")
    @classmethod
    def _time(cls, v: str | None) -> str | None:
        return check_time_limit(v)

    @field_validator("default_account", "default_partition")
    @classmethod
    def _sbatch_text(cls, v: str | None) -> str | None:
        return check_sbatch_text(v)

    @field_validator("hf_cache_dir")
    @classmethod
    def _hf_cache(cls, v: str | None) -> str | None:
        if v is not None and (not str(v).startswith("/") or any(c in str(v) for c in ":,\n")):
            raise ValueError("hf_cache_dir must be an absolute directory path without ':' or ','")
        return v

    @field_validator("model_paths", "containers")
    @classmethod
    def _aliases(cls, v: dict[str, str]) -> dict[str, str]:
        for alias, target in v.items():
            if not str(target).startswith("/"):
                raise ValueError(f"alias '{alias}' must map to an absolute path, not '{target}'")
        return v

    @field_validator("eval_datasets_dir")
    @classmethod
    def _eval_dir(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in v)):
            raise ValueError("must be an absolute directory path without control characters, e.g. /shared/evals")
        return v

    @field_validator("node_local_dir")
    @classmethod
    def _local_dir(cls, v: str | None) -> str | None:
        if v is not None and (not v.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in v)):
            raise ValueError("must be an absolute path without control characters, e.g. /local/scratch")
        return v

    @property
    def source(self) -> str | None:
        return self._source


def find_cluster_file(cwd: Path | None = None, srtctl_root: str | None = None) -> Path | None:
    """$SRTSLURM_CONFIG, then ./srtslurm.yaml, then $SRTCTL_ROOT/srtslurm.yaml, then the checkout's."""
    env = os.environ.get(CLUSTER_FILE_ENV)
    if env:
        p = Path(env)
        if not p.is_file():
            raise ConfigError(f"${CLUSTER_FILE_ENV} points to a missing file: {env}",
                              hint=f"unset {CLUSTER_FILE_ENV} or create the file with `make setup`")
        return p
    here = (cwd or Path.cwd()) / CLUSTER_FILE_NAME
    if here.is_file():
        return here
    root = srtctl_root or os.environ.get("SRTCTL_ROOT")
    if root and (Path(root) / CLUSTER_FILE_NAME).is_file():
        return Path(root) / CLUSTER_FILE_NAME
    checkout = Path(__file__).resolve().parent.parent  # where `make setup` writes it
    if (checkout / CLUSTER_FILE_NAME).is_file():
        return checkout / CLUSTER_FILE_NAME
    return None


def load_cluster_config(path: str | Path | None = None) -> ClusterConfig:
    """Load and validate the cluster file; with no file anywhere, the built-in defaults."""
    p = Path(path) if path else find_cluster_file()
    if p is None:
        return ClusterConfig()
    cfg = validate_document(ClusterConfig, load_yaml(p))
    cfg._source = str(p)
    return cfg
