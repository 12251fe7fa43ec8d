"""Simulated SGLang engine: SGLang's HTTP API with modelled timing and no GPU.

Run it like SGLang: `python3 -m srt_agent.sim --model-path P --port N [SGLang flags] [--sim-* flags]`
(see cli.py, docs/simulated-engine.md). `write_model_dir` builds a local HF-style model directory
(tokenizer, chat template, configs) for tokenizer-loading servers such as Dynamo's mocker.
"""

from srt_agent.sim.config import SimConfig
from srt_agent.sim.model_dir import write_model_dir

__all__ = ["SimConfig", "write_model_dir"]
