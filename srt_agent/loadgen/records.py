"""Per-request records and the mergeable inter-token-latency histogram.

All times are seconds on the monotonic clock (time.monotonic, CLOCK_MONOTONIC on Linux), which
is shared by every process of the machine, so records of different worker processes compare.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from dataclasses import dataclass, field


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request. Filled in by a worker, read by metrics.summarize.

    scheduled   when the request was due: closed loop, the time its slot became free (the
                previous request's last byte, or the start of the phase); Poisson, its arrival
    ready       when the client could have sent it: max(scheduled, slot free); == scheduled in
                closed loop. sent - ready is the client's own lag.
    sent        when the request bytes were handed to the kernel
    first_token arrival of the first SSE event that carries a non-empty token
    end         arrival of the response's last byte (or when the failure was seen)
    chunk_times arrival time of every event that carried tokens (dropped once folded into an
                ItlHistogram, n_chunks keeps the count)
    """

    index: int
    scheduled: float
    ready: float = 0.0
    sent: float = 0.0
    first_token: float | None = None
    end: float | None = None
    ok: bool = False
    error: str | None = None
    output_tokens: int = 0
    input_tokens: int = 0
    requested_output_tokens: int = 0
    usage_reported: bool = False
    n_chunks: int = 0
    chunk_times: list[float] | None = field(default=None, repr=False)

    @property
    def ttft(self) -> float | None:
        if self.first_token is None:
            return None
        return self.first_token - self.scheduled

    @property
    def e2el(self) -> float | None:
        if self.end is None:
            return None
        return self.end - self.scheduled

    @property
    def tpot(self) -> float | None:
        """(E2EL - TTFT) / (output_tokens - 1); None with fewer than two output tokens."""
        if self.first_token is None or self.end is None or self.output_tokens < 2:
            return None
        return (self.end - self.first_token) / (self.output_tokens - 1)


_US = 1e6


class ItlHistogram:
    """Counts of inter-token gaps at 1 microsecond resolution, plus exact sum and sum of squares.

    Memory grows with the number of distinct microsecond values, not with tokens, so a
    40,960-request point with 1024 tokens each stays small. Histograms of worker processes merge
    by addition. Percentiles interpolate linearly between order statistics (numpy's default)
    over the values rounded to the microsecond.
    """

    __slots__ = ("counts", "n", "total", "total_sq")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0

    def add_times(self, times: list[float]) -> None:
        """Add the gaps between consecutive arrival times (seconds) of one request."""
        if len(times) < 2:
            return
        gaps = list(map(operator.sub, times[1:], times[:-1]))
        self.counts.update(map(round, map(_US.__mul__, gaps)))
        self.n += len(gaps)
        self.total += sum(gaps)
        self.total_sq += sum(map(operator.mul, gaps, gaps))

    def merge(self, other: ItlHistogram) -> None:
        self.counts.update(other.counts)
        self.n += other.n
        self.total += other.total
        self.total_sq += other.total_sq

    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def std(self) -> float:
        """Population standard deviation (ddof=0), like numpy.std."""
        if not self.n:
            return 0.0
        m = self.mean()
        return math.sqrt(max(self.total_sq / self.n - m * m, 0.0))

    def percentile(self, q: float) -> float:
        """q in [0, 100]; value in seconds."""
        if not self.n:
            return 0.0
        pos = (self.n - 1) * q / 100.0
        lo_rank = math.floor(pos)
        frac = pos - lo_rank
        lo, hi = self._values_at(lo_rank)
        return (lo + (hi - lo) * frac) / 1e6

    def _values_at(self, rank: int) -> tuple[int, int]:
        """The order statistics at rank and rank + 1 (microseconds)."""
        seen = 0
        keys = sorted(self.counts)
        for i, us in enumerate(keys):
            seen += self.counts[us]
            if seen > rank:
                if seen > rank + 1 or i + 1 == len(keys):
                    return us, us
                return us, keys[i + 1]
        return keys[-1], keys[-1]

    def __getstate__(self):
        return (self.counts, self.n, self.total, self.total_sq)

    def __setstate__(self, state):
        self.counts, self.n, self.total, self.total_sq = state
