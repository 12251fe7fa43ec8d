"""Port allocation: unique per address within a job, shifted by a per-job offset.

Nodes that share an address (every simulated node on one host) get distinct ports, real nodes
reuse the same numbers. The job's block starts at PORT_BASE + (job_id mod slots) x block size, so
two jobs whose ids differ by less than the number of slots never collide on a shared node.
Ports stay below Linux's ephemeral range (32768+), where outgoing connections take theirs.
"""

from __future__ import annotations

from collections import defaultdict

PORT_BASE = 10000
PORT_LIMIT = 32000
BLOCK = 100


def job_number(job_id: str | int) -> int:
    digits = "".join(c for c in str(job_id) if c.isdigit())
    return int(digits) if digits else 0


class PortAllocator:
    def __init__(self, job_id: str | int, ports_needed_per_address: int) -> None:
        self.block = max(BLOCK, -(-ports_needed_per_address // BLOCK) * BLOCK)
        slots = (PORT_LIMIT - PORT_BASE) // self.block
        if slots < 1:
            raise ValueError(f"a job needing {ports_needed_per_address} ports per address does not fit")
        self.slot = job_number(job_id) % slots
        self.base = PORT_BASE + self.slot * self.block
        self._next: dict[str, int] = defaultdict(int)

    def take(self, address: str) -> int:
        n = self._next[address]
        if n >= self.block:
            raise ValueError(f"port block of {self.block} exhausted on {address}")
        self._next[address] = n + 1
        return self.base + n
