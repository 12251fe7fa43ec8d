"""Port blocks: unique per address within a job, shifted per job id, below the ephemeral range."""

import pytest

from srt_agent.ports import BLOCK, PORT_BASE, PORT_LIMIT, PortAllocator, job_number


def test_job_number():
    assert job_number(12345) == 12345 and job_number("12345") == 12345
    assert job_number("12345_7") == 123457 and job_number("local") == 0


def test_unique_per_address_and_reused_across_addresses():
    a = PortAllocator("7", 10)
    first = [a.take("10.0.0.1") for _ in range(5)]
    other = [a.take("10.0.0.2") for _ in range(5)]
    assert len(set(first)) == 5 and first == other
    assert first == list(range(a.base, a.base + 5))


def test_block_starts_at_slot_of_job_id():
    a = PortAllocator(3, 10)
    assert a.block == BLOCK and a.base == PORT_BASE + 3 * BLOCK
    slots = (PORT_LIMIT - PORT_BASE) // BLOCK
    assert PortAllocator(3 + slots, 10).base == a.base  # ids wrap around


def test_adjacent_job_ids_get_disjoint_blocks():
    seen: set[int] = set()
    for job_id in range(100, 140):
        a = PortAllocator(job_id, 60)
        ports = {a.take("shared-node") for _ in range(60)}
        assert not ports & seen
        seen |= ports


def test_big_jobs_get_bigger_blocks():
    a = PortAllocator(1, 250)
    assert a.block == 300
    ports = [a.take("h") for _ in range(250)]
    assert len(set(ports)) == 250 and max(ports) < PORT_LIMIT


def test_every_port_below_ephemeral_range():
    slots = (PORT_LIMIT - PORT_BASE) // BLOCK
    a = PortAllocator(slots - 1, 100)
    assert max(a.take("h") for _ in range(100)) < 32768


def test_exhausting_the_block_is_an_error():
    a = PortAllocator(1, 1)
    for _ in range(a.block):
        a.take("h")
    with pytest.raises(ValueError, match="exhausted"):
        a.take("h")


def test_too_many_ports_do_not_fit():
    with pytest.raises(ValueError, match="does not fit"):
        PortAllocator(1, PORT_LIMIT)
