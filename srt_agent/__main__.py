"""`python -m srt_agent RUN_DIR`: the allocation's entrypoint."""

import sys

from .agent.main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
