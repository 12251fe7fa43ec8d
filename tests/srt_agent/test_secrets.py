"""Secret detection and redaction."""

import pytest

from srt_agent.secrets import REDACTED, is_secret_name, redact_env, redact_text, split_env


@pytest.mark.parametrize("name", ["HF_TOKEN", "hf_token", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD",
                                  "OPENAI_API_KEY", "WANDB_KEY", "MY_CREDENTIALS", "SSH_PRIVATE_KEY"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["CUDA_VISIBLE_DEVICES", "NATS_SERVER", "KEYBOARD", "TORCH_DISTRIBUTED_DEFAULT_TIMEOUT",
                                  "DYN_SYSTEM_PORT"])
def test_plain_names(name):
    assert not is_secret_name(name)


def test_split_and_redact():
    env = {"HF_TOKEN": "hf_abc123", "A": "1", "EMPTY_TOKEN": ""}
    plain, secret = split_env(env)
    assert plain == {"A": "1"} and secret == {"HF_TOKEN": "hf_abc123", "EMPTY_TOKEN": ""}
    assert redact_env(env) == {"HF_TOKEN": REDACTED, "A": "1", "EMPTY_TOKEN": ""}


def test_redact_text_longest_first_and_short_values_kept():
    text = "token=hf_abcdef and prefix hf_abc and x=ab"
    out = redact_text(text, ["hf_abc", "hf_abcdef", "ab", ""])
    assert "hf_abc" not in out and out.count(REDACTED) == 2 and "x=ab" in out


def test_token_count_flags_are_not_secrets():
    from srt_agent.secrets import is_secret_flag

    for flag in ("max-total-tokens", "max-prefill-tokens", "skip-tokenizer-init", "num-reserved-decode-tokens"):
        assert not is_secret_flag(flag), flag
    for flag in ("hf-token", "token", "api-key", "admin-api-key"):
        assert is_secret_flag(flag), flag
