"""python -m srt_agent.loadgen.worker_entry FD: a worker process; FD is its end of a socketpair."""

import sys
from multiprocessing.connection import Connection

from srt_agent.loadgen.worker import worker_main


def main(argv: list[str]) -> None:
    conn = Connection(int(argv[1]))
    spec = conn.recv()
    serve = getattr(spec, "serve", None)  # a trace replay's spec brings its own worker (trace_worker.py)
    serve(conn) if serve is not None else worker_main(conn, spec)


if __name__ == "__main__":
    main(sys.argv)
