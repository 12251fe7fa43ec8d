"""The simulated scheduler: one forward pass at a time, like an SGLang scheduler process.

A single asyncio task runs forward passes back to back while there is work:

- prefill pass (aggregated and prefill roles): admits waiting requests in FIFO order while the
  running batch has room (max running requests) and the batch stays within max_prefill_tokens
  (at least one request); lasts `config.prefill_seconds(sum of prompt tokens)`; each admitted
  request gets its first token at the end. On a prefill worker the request then finishes.
- decode role admission: requests whose KV has arrived join the running batch without compute.
- decode pass: lasts `config.decode_step_seconds(len(running))`; every running request gets one
  token at the end of the pass.

Prefill passes take priority over decode passes, as in SGLang, so a burst of arrivals stretches
inter-token latency. Passes follow each other back to back on absolute deadlines (a pass starts
when the previous one ended, a prefill pass not before its requests arrived), so timer jitter and
the CPU time spent writing the previous pass's tokens do not accumulate: like SGLang's overlap
scheduler, that work overlaps the next pass. If writing tokens takes longer than a whole pass, or
the process wakes up late, the pass is late: recorded in `stats.lateness_*` (exported on /metrics),
and the schedule continues from now (no burst to catch up).

Tokens are pushed synchronously to each request's `out` sink (see streams.py), so every token
due at a pass is written to its socket in the same loop iteration, with no task switch per token.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import Protocol

from srt_agent.sim.config import SimConfig

LATE_S = 0.002  # a pass ending later than this after its deadline counts as late
TIMER_SLACK_S = 0.0005


class TokenSink(Protocol):
    def push(self, gen: Generation, index: int, finish: str | None) -> None:
        """`index`: candidate index of the new token, -1 for EOS (no text), -2 for no token."""


class Generation:
    """One request's generation state: prompt size, limits, its token stream, its sink."""

    __slots__ = (
        "aborted",
        "arrival",
        "done",
        "eos_p",
        "finish_reason",
        "ignore_eos",
        "max_new_tokens",
        "min_new_tokens",
        "n_out",
        "ncand",
        "out",
        "prompt_tokens",
        "rid",
        "rng",
        "room",
        "tokens",
    )

    def __init__(self, rid: str, prompt_tokens: int, max_new_tokens: int, *, min_new_tokens: int = 0,
                 ignore_eos: bool = False, eos_probability: float = 0.0, seed_material: bytes = b"",
                 ncand: int = 1, keep_tokens: bool = False) -> None:
        self.rid = rid
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min_new_tokens
        self.ignore_eos = ignore_eos
        self.eos_p = 0.0 if ignore_eos else eos_probability
        self.rng = random.Random(seed_material)
        self.ncand = ncand
        self.n_out = 0
        self.out: TokenSink | None = None
        self.done: asyncio.Future | None = None
        self.aborted = False
        self.finish_reason: str | None = None
        self.arrival = 0.0
        self.room: str | None = None
        self.tokens: list[int] | None = [] if keep_tokens else None

    def next_token(self) -> tuple[int, str | None]:
        """(candidate index or -1 for EOS, finish reason or None); deterministic per request."""
        n = self.n_out
        if self.max_new_tokens <= 0:
            return -2, "length"
        self.n_out = n + 1
        if self.eos_p and n >= self.min_new_tokens and self.rng.random() < self.eos_p:
            return -1, "stop"
        index = self.rng.getrandbits(32) % self.ncand
        return index, ("length" if n + 1 >= self.max_new_tokens else None)


class Stats:
    __slots__ = (
        "aborted",
        "decode_passes",
        "decode_tokens",
        "forward_passes",
        "generation_tokens",
        "late_passes",
        "lateness_max_s",
        "lateness_sum_s",
        "prefill_passes",
        "prefill_tokens",
        "prompt_tokens",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = self.prompt_tokens = self.generation_tokens = 0
        self.forward_passes = self.prefill_passes = self.decode_passes = 0
        self.lateness_max_s = self.lateness_sum_s = 0.0
        self.late_passes = self.aborted = 0
        self.prefill_tokens = self.decode_tokens = 0  # computed by prefill / decode passes


GEN_THROUGHPUT_PASSES = 40  # sglang:gen_throughput is refreshed every this many decode passes (SGLang's
#                             --decode-log-interval default)


class Scheduler:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.role = config.role
        self.max_running = config.effective_max_running_requests
        self.waiting: deque[Generation] = deque()
        self.running: list[Generation] = []
        self.stats = Stats()
        self.forward_ct = 0
        self.profiler = None  # set by the server: has on_forward(ct, kind, t0, t1, batch, tokens)
        self.on_prefill_done = None  # PD prefill role: callback(list[Generation])
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.gen_throughput = 0.0  # generated tokens/s over the last window (0 when idle)
        self._tp_mark: tuple[float, int, int] | None = None  # (time, generated tokens, decode passes)

    # -- public -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="sim-scheduler")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for gen in list(self.waiting) + self.running:
            self._fail(gen, ConnectionAbortedError("server shutting down"))
        self.waiting.clear()
        self.running.clear()

    def submit(self, gen: Generation) -> None:
        loop = asyncio.get_running_loop()
        if gen.done is None:
            gen.done = loop.create_future()
        gen.arrival = loop.time()
        self.stats.requests += 1
        self.stats.prompt_tokens += gen.prompt_tokens
        self.waiting.append(gen)
        self._wake.set()

    @property
    def num_running(self) -> int:
        return len(self.running)

    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def used_tokens(self) -> int:
        """KV tokens held by the running batch (prompt + generated so far)."""
        return sum(g.prompt_tokens + g.n_out for g in self.running)

    def _update_throughput(self, now: float) -> None:
        gen, passes = self.stats.generation_tokens, self.stats.decode_passes
        if self._tp_mark is None:
            self._tp_mark = (now, gen, passes)
        elif passes - self._tp_mark[2] >= GEN_THROUGHPUT_PASSES and now > self._tp_mark[0]:
            t0, g0, _ = self._tp_mark
            self.gen_throughput = (gen - g0) / (now - t0)
            self._tp_mark = (now, gen, passes)

    # -- loop ---------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = loop.time
        config = self.config
        prev_end = clock()
        while True:
            if not self.waiting and not self.running:
                self.gen_throughput, self._tp_mark = 0.0, None
                self._wake.clear()
                await self._wake.wait()
                prev_end = clock()
                continue
            batch = self._admit()
            start = prev_end
            if batch is not None and self.role != "decode":
                tokens = sum(g.prompt_tokens for g in batch)
                duration, kind, size = config.prefill_seconds(tokens), "prefill", len(batch)
                start = max(start, max(g.arrival for g in batch))  # no prefill before arrival
            else:
                tokens = size = len(self.running)
                duration, kind = config.decode_step_seconds(size), "decode"
            end = start + duration
            now = clock()
            if end > now:
                # epoll rounds timeouts up to whole milliseconds: aim half a millisecond early
                await asyncio.sleep(max(0.0, end - now - TIMER_SLACK_S))
                late = clock() - end
            else:  # the previous pass's token writing took longer than this whole pass
                late = now - end
                end = now
                await asyncio.sleep(0)
            if late > LATE_S and duration > 0:  # zero-duration passes have no schedule to miss
                self._record_lateness(late)
            prev_end = end
            self.forward_ct += 1
            self.stats.forward_passes += 1
            if kind == "prefill":
                self.stats.prefill_passes += 1
                self.stats.prefill_tokens += tokens
                self._finish_prefill(batch)
            else:
                self.stats.decode_passes += 1
                self.stats.decode_tokens += size
                self._decode_step()
            self._update_throughput(end)
            if self.profiler is not None:
                self.profiler.on_forward(self.forward_ct, kind, start, end, size, tokens)

    def _admit(self) -> list[Generation] | None:
        """Pop the next prefill batch (or, on a decode worker, move arrivals into running)."""
        room = self.max_running - len(self.running)
        if room <= 0 or not self.waiting:
            return None
        batch: list[Generation] = []
        budget = self.config.max_prefill_tokens
        waiting = self.waiting
        while waiting and len(batch) < room:
            gen = waiting[0]
            if gen.aborted:
                self._drop(waiting.popleft())
                continue
            if self.role != "decode":
                if batch and gen.prompt_tokens > budget:
                    break
                budget -= gen.prompt_tokens
            batch.append(waiting.popleft())
        if not batch:
            return None
        if self.role == "decode":
            self.running.extend(batch)
        return batch

    def _finish_prefill(self, batch: list[Generation]) -> None:
        # On a prefill worker the server caps max_new_tokens at 1, so every request ends here.
        for gen in batch:
            if gen.aborted:
                self._drop(gen)
            elif self._emit(gen) is None:
                self.running.append(gen)
        if self.on_prefill_done is not None:
            self.on_prefill_done(batch)

    def _decode_step(self) -> None:
        still = []
        append = still.append
        emit = self._emit
        for gen in self.running:
            if gen.aborted:
                self._drop(gen)
            elif emit(gen) is None:
                append(gen)
        self.running = still

    def _emit(self, gen: Generation) -> str | None:
        index, finish = gen.next_token()
        if index != -2:
            self.stats.generation_tokens += 1
            if gen.tokens is not None:
                gen.tokens.append(index)
        gen.out.push(gen, index, finish)
        if finish is not None:
            self._finish(gen, finish)
        return finish

    def _finish(self, gen: Generation, reason: str) -> None:
        if gen.finish_reason is None:
            gen.finish_reason = reason
            if gen.done is not None and not gen.done.done():
                gen.done.set_result(reason)

    def _drop(self, gen: Generation) -> None:
        """A request whose client went away: stop generating, release its handler."""
        self.stats.aborted += 1
        self._fail(gen, ConnectionResetError("client disconnected"))

    def _fail(self, gen: Generation, exc: BaseException) -> None:
        gen.aborted = True
        if gen.done is not None and not gen.done.done():
            gen.done.set_exception(exc)

    def _record_lateness(self, late: float) -> None:
        s = self.stats
        s.late_passes += 1
        s.lateness_sum_s += late
        s.lateness_max_s = max(s.lateness_max_s, late)
