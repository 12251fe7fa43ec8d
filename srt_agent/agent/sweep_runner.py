"""A sweep in one allocation (`sweep.mode: allocation`): the members run one after another, each
with the ordinary agent (`run_agent`) on its own run directory `SWEEP_DIR/<member>/` with its own
status.json and ledger. Each member's workers, frontends and router are stopped before the next
member's start; a requeued or resumed job skips finished members and, through the member's
ledger, finished benchmark points.

NATS and etcd are restarted for every member (each member's plan owns them).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..atomic import write_json_atomic
from ..secrets import SECRETS_ENV_VAR
from .status import now


def member_finished(member_dir: Path) -> bool:
    """The member's work is done: its ledger has the benchmark (or profiling) phase."""
    try:
        ledger = json.loads((member_dir / "ledger.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return bool({"benchmark", "profiling"} & set(ledger.get("phases", {})))


def _log(message: str) -> None:
    print(f"[srt-agent] sweep: {message}", file=sys.stderr, flush=True)


async def run_sweep(sweep_dir: Path) -> int:
    from .main import run_agent

    info = json.loads((sweep_dir / "sweep.json").read_text())
    secrets = os.environ.get(SECRETS_ENV_VAR)  # every member's agent takes them from the environment
    progress_path = sweep_dir / "sweep_progress.json"
    worst = 0
    for i, member in enumerate(info["members"]):
        member_dir = sweep_dir / member["name"]
        progress = {"updated_at": now(), "current": member["name"], "index": i, "total": len(info["members"])}
        if member_finished(member_dir):
            _log(f"member {i + 1}/{len(info['members'])} {member['name']}: already finished, skipped")
            continue
        write_json_atomic(progress_path, progress)
        _log(f"member {i + 1}/{len(info['members'])} {member['name']}: starting")
        if secrets is not None:
            os.environ[SECRETS_ENV_VAR] = secrets
        code = await run_agent(member_dir)
        _log(f"member {member['name']}: exit code {code}")
        if code in (130, 143):  # stopped by a signal (scancel, time limit): resume continues here
            write_json_atomic(progress_path, {**progress, "stopped": True})
            return code
        worst = worst or code
    write_json_atomic(progress_path, {"updated_at": now(), "current": None, "done": True})
    return worst
