"""Simulated torch profiler: /start_profile and /stop_profile write small trace files.

Semantics follow SGLang: profiling starts at forward pass `start_step` (absolute forward count;
next pass if absent or already past) and, if `num_steps` is given, stops by itself after that
many passes; otherwise /stop_profile stops it. Traces go to `output_dir`, else
$SGLANG_TORCH_PROFILER_DIR, else /tmp, one file per tensor-parallel rank:

    {output_dir}/{profile_id}-TP-{rank}.trace.json.gz

Each file is gzip'd Chrome-trace JSON (openable in Perfetto / chrome://tracing): one complete
("X") event per forward pass (prefill or decode, with batch size and tokens), plus an `srt_sim`
object naming node, role, rank, activities and the per-pass list. As in SGLang, trace files are
written for the "CPU"/"GPU" activities (default both), "MEM" adds one
`{time}-TP-{rank}-memory.pickle` per rank, and "CUDA_PROFILER" alone (SGLang's nsys trigger)
writes no file, only the start/stop log lines.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import pickle
import time
from pathlib import Path

from srt_agent.atomic import write_bytes_atomic
from srt_agent.sim.config import SimConfig

log = logging.getLogger("srt_agent.sim")

MAX_RECORDED_PASSES = 100_000


class ProfileError(Exception):
    """A profiling request SGLang would refuse (HTTP 400)."""


class Profiler:
    def __init__(self, config: SimConfig, node: str) -> None:
        self.config = config
        self.node = node
        self.active = False
        self.recording = False
        self.output_dir = ""
        self.profile_id = ""
        self.activities: list[str] = []
        self.start_ct = 0
        self.stop_ct: int | None = None
        self.passes: list[tuple[int, str, float, float, int, int]] = []
        self.written: list[Path] = []
        self._t0 = 0.0
        self._wall0 = 0.0
        self._write_task: asyncio.Task | None = None
        self._stopping = False

    def start(self, forward_ct: int, *, output_dir: str | None = None, start_step: int | None = None,
              num_steps: int | None = None, activities: list[str] | None = None) -> None:
        if self.active:
            raise ProfileError("Profiling is already in progress. Call /stop_profile first.")
        if num_steps is not None and num_steps < 1:
            raise ProfileError("num_steps must be a positive integer")
        self.output_dir = output_dir or os.environ.get("SGLANG_TORCH_PROFILER_DIR") or "/tmp"
        self.activities = list(activities or ["CPU", "GPU"])
        self.profile_id = f"{time.time():.6f}"
        self.start_ct = max(start_step or 0, forward_ct + 1)
        self.stop_ct = self.start_ct + num_steps if num_steps is not None else None
        self.passes = []
        self.active = True
        self.recording = False
        self._t0 = asyncio.get_running_loop().time()
        self._wall0 = time.time()
        log.info("Profiling starts at forward pass %d%s. Traces will be saved to: %s (activities %s)",
                 self.start_ct, f" for {num_steps} passes" if num_steps else "", self.output_dir,
                 ",".join(self.activities))

    def on_forward(self, forward_ct: int, kind: str, t_start: float, t_end: float, batch: int,
                   tokens: int) -> None:
        """Called by the scheduler after every forward pass."""
        if not self.active or self._stopping:
            return
        if forward_ct >= self.start_ct and len(self.passes) < MAX_RECORDED_PASSES:
            self.recording = True
            self.passes.append((forward_ct, kind, t_start, t_end, batch, tokens))
        if self.stop_ct is not None and forward_ct + 1 >= self.stop_ct:
            self._stopping = True
            self._write_task = asyncio.get_running_loop().create_task(self.stop())

    async def stop(self) -> list[Path]:
        if not self.active:
            raise ProfileError("Profiling is not in progress. Call /start_profile first.")
        self.active = False
        self._stopping = False
        passes, self.passes = self.passes, []
        log.info("Stop profiling... (%d forward passes recorded)", len(passes))
        paths = await asyncio.get_running_loop().run_in_executor(None, self._write, passes)
        self.written.extend(paths)
        if "CUDA_PROFILER" in self.activities:
            log.info("CUDA profiler range ended (cudaProfilerStop).")
        log.info("Profiling done. Traces are saved to: %s (%d files)", self.output_dir, len(paths))
        return paths

    def _write(self, passes: list[tuple[int, str, float, float, int, int]]) -> list[Path]:
        out = Path(self.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        if {"CPU", "GPU"} & set(self.activities):
            paths += self._write_traces(out, passes)
        if "MEM" in self.activities:
            paths += self._write_memory_snapshots(out)
        return paths

    def _write_memory_snapshots(self, out: Path) -> list[Path]:
        paths = []
        for rank in range(self.config.tp_size):
            path = out / f"{time.time()}-TP-{rank}-memory.pickle"
            snapshot = {"simulated": True, "node": self.node, "role": self.config.role, "tp_rank": rank,
                        "segments": [], "device_traces": []}
            _write_atomic(path, pickle.dumps(snapshot))
            paths.append(path)
        return paths

    def _write_traces(self, out: Path, passes: list[tuple[int, str, float, float, int, int]]) -> list[Path]:
        cfg = self.config
        per_node = max(1, cfg.tp_size // cfg.nnodes)
        steps = [{"forward_ct": ct, "kind": kind, "start_s": round(t0 - self._t0, 6),
                  "dur_ms": round((t1 - t0) * 1000, 3), "batch_size": batch, "tokens": tokens}
                 for ct, kind, t0, t1, batch, tokens in passes]
        paths = []
        for rank in range(cfg.tp_size):
            events = [{"ph": "X", "cat": "gpu_user_annotation", "name": f"{s['kind']}_forward",
                       "pid": rank, "tid": 0, "ts": round(s["start_s"] * 1e6, 1),
                       "dur": round(s["dur_ms"] * 1e3, 1),
                       "args": {"forward_ct": s["forward_ct"], "batch_size": s["batch_size"],
                                "tokens": s["tokens"]}} for s in steps]
            trace = {
                "schemaVersion": 1,
                "deviceProperties": [],
                "distributedInfo": {"backend": "nccl", "rank": rank, "world_size": cfg.tp_size},
                "traceEvents": events,
                "srt_sim": {
                    "simulated": True,
                    "node": self.node,
                    "node_rank": cfg.node_rank + rank // per_node if cfg.nnodes > 1 else cfg.node_rank,
                    "role": cfg.role,
                    "tp_rank": rank,
                    "tp_size": cfg.tp_size,
                    "dp_size": cfg.dp_size,
                    "profile_id": self.profile_id,
                    "activities": self.activities,
                    "start_unix_s": self._wall0,
                    "steps": steps,
                },
            }
            path = out / f"{self.profile_id}-TP-{rank}.trace.json.gz"
            _write_atomic(path, gzip.compress(json.dumps(trace, separators=(",", ":")).encode()))
            paths.append(path)
        return paths


def _write_atomic(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data)
