"""The resume ledger: which phases and benchmark points of a run are finished, for which config.

A requeued job or `srtctl apply --resume RUN_DIR` reads it and skips finished work. A changed
config (fingerprint mismatch) refuses to resume unless forced. Written atomically.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..atomic import write_json_atomic
from ..errors import ResumeError
from .status import now

# keys of the job config that do not change what is measured
_IGNORED = ("name", "health")


def fingerprint(job_json: dict[str, Any]) -> str:
    data = {k: v for k, v in job_json.items() if k not in _IGNORED}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class Ledger:
    def __init__(self, path: Path, fp: str, *, force: bool = False) -> None:
        self.path = path
        self.data: dict[str, Any] = {"fingerprint": fp, "phases": {}, "points": {}, "attempts": []}
        if path.exists():
            old = json.loads(path.read_text())
            if old.get("fingerprint") != fp and not force:
                raise ResumeError(
                    f"{path}: the job config changed since this run started (fingerprint {old.get('fingerprint')} "
                    f"-> {fp}); refusing to mix results. Use `srtctl apply --resume {path.parent} --force` to "
                    f"resume anyway, or submit a new run")
            self.data.update({k: old.get(k, v) for k, v in self.data.items() if k != "fingerprint"})
            if old.get("fingerprint") != fp:
                self.data.setdefault("forced_from", []).append(old.get("fingerprint"))
        self.data["attempts"].append(now())
        self.save()

    @property
    def resumed(self) -> bool:
        return len(self.data["attempts"]) > 1

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def phase_done(self, name: str) -> bool:
        return name in self.data["phases"]

    def mark_phase(self, name: str, **info: Any) -> None:
        self.data["phases"][name] = {"at": now(), **info}
        self.save()

    def point_done(self, key: str) -> str | None:
        return self.data["points"].get(key)

    def mark_point(self, key: str, result_file: str) -> None:
        self.data["points"][key] = result_file
        self.save()
