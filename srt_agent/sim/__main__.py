"""`python -m srt_agent.sim`: run a simulated SGLang worker (see cli.py)."""

import sys

from srt_agent.sim.cli import main

sys.exit(main())
