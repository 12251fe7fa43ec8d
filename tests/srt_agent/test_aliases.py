"""The alias resolver: known alias, absolute path, or an error that lists the known aliases."""

import pytest

from srt_agent.aliases import resolve_alias
from srt_agent.errors import ConfigError

ALIASES = {"deepseek-r1": "/models/DeepSeek-R1", "llama-70b": "/models/Llama-3-70B"}


def test_alias_resolves():
    assert resolve_alias("deepseek-r1", ALIASES, kind="model_paths", key="model.path") == "/models/DeepSeek-R1"


def test_absolute_path_passes_through():
    assert resolve_alias("/elsewhere/model", ALIASES, kind="model_paths", key="model.path") == "/elsewhere/model"


def test_alias_wins_over_nothing_else():
    aliases = {"/weird": "/actual"}
    assert resolve_alias("/weird", aliases, kind="containers", key="model.container") == "/actual"


def test_unknown_alias_lists_known_ones_and_suggests():
    with pytest.raises(ConfigError) as info:
        resolve_alias("deepseek-r2", ALIASES, kind="model_paths", key="model.path", file="job.yaml", line=5,
                      cluster_file="/etc/srtslurm.yaml")
    err = info.value
    text = str(err)
    assert text.startswith("job.yaml:5: model.path: 'deepseek-r2' is neither a known alias nor an absolute path")
    assert "did you mean 'deepseek-r1'?" in text
    assert "known model_paths aliases in /etc/srtslurm.yaml: deepseek-r1, llama-70b" in text


def test_no_aliases_defined():
    with pytest.raises(ConfigError) as info:
        resolve_alias("latest", {}, kind="containers", key="model.container")
    assert "known containers aliases in srtslurm.yaml: (none defined)" in str(info.value)
    assert "did you mean" not in str(info.value)


def test_relative_path_is_not_an_alias():
    with pytest.raises(ConfigError):
        resolve_alias("models/DeepSeek-R1", ALIASES, kind="model_paths", key="model.path")


def test_container_registry_references_pass_through():
    import pytest as _pytest

    from srt_agent.aliases import resolve_alias
    from srt_agent.errors import ConfigError

    for ref in ("lmsysorg/sglang:v0.5.8-cu130", "nvcr.io/nvidia/ai-dynamo/sglang-runtime:0.8.0", "nvcr.io#nvidia/x:1",
                "nginx:1.27.4"):
        assert resolve_alias(ref, {}, kind="containers", key="model.container", registry=True) == ref
    with _pytest.raises(ConfigError, match="registry reference"):
        resolve_alias("dynamo-sglang", {}, kind="containers", key="model.container", registry=True)
    with _pytest.raises(ConfigError):  # model paths are never registry references
        resolve_alias("org/model:x", {}, kind="model_paths", key="model.path")
