"""nginx's open-file limit: raise the soft RLIMIT_NOFILE to the hard limit and size nginx from what
was granted, instead of asking nginx for a fixed number it may not get.

(`worker_rlimit_nofile 132096` under a hard limit of 1024 or 65536 fails with
`setrlimit(RLIMIT_NOFILE, 132096) failed (1: Operation not permitted)` and nginx then runs with
whatever soft limit it inherited, typically 1024.)

The agent raises its own soft limit before it starts any process, so every child (and srun, which
propagates soft limits to its steps) inherits it; nginx's launch script raises it again on its node.
"""

from __future__ import annotations

import resource
from dataclasses import asdict, dataclass

MAX_WORKER_CONNECTIONS = 65536
RESERVED_FDS = 64  # logs, listen sockets, pid file, temp files
FDS_PER_STREAM = 2  # a proxied stream holds the client connection and the upstream connection


@dataclass(frozen=True)
class NofileReport:
    soft_before: int
    soft: int  # what nginx gets (after raising to the hard limit)
    hard: int
    worker_connections: int
    worker_rlimit_nofile: int
    concurrency: int | None  # the largest configured benchmark concurrency, if any
    needed_connections: int | None
    warning: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _finite(value: int, fallback: int) -> int:
    return fallback if value == resource.RLIM_INFINITY or value < 0 else int(value)


def raise_soft_limit() -> tuple[int, int, int]:
    """(soft before, soft now, hard): soft raised to hard when allowed; never lowered."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    granted = _finite(soft, 1 << 20)
    return _finite(before, granted), granted, _finite(hard, granted)


def needed_connections(concurrency: int | None) -> int | None:
    """worker_connections one nginx worker needs to carry `concurrency` streams alone."""
    return None if not concurrency else FDS_PER_STREAM * concurrency + RESERVED_FDS


def size_nginx(soft_before: int, soft: int, hard: int, concurrency: int | None) -> NofileReport:
    """worker_rlimit_nofile = the granted soft limit; worker_connections what fits in it."""
    connections = max(16, min(MAX_WORKER_CONNECTIONS, soft - RESERVED_FDS))
    need = needed_connections(concurrency)
    warning = None
    if need is not None and connections < need:
        warning = (f"nginx got {soft} open files (hard limit {hard}): worker_connections {connections} "
                   f"carries ~{connections // FDS_PER_STREAM} streams per worker, below the configured "
                   f"concurrency {concurrency} (needs {need}); raise the node's open-file hard limit "
                   f"(`ulimit -Hn`, slurmd's LimitNOFILE) or lower the concurrency")
    return NofileReport(soft_before=soft_before, soft=soft, hard=hard, worker_connections=connections,
                        worker_rlimit_nofile=max(64, soft), concurrency=concurrency,
                        needed_connections=need, warning=warning)
