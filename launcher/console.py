"""What srtctl's screens share: the rich console, the colours of states, how a path is shown.

rich is imported when a console is made, not with this module: dry-run and --help never draw a
table and stay free of it (tests/launcher/test_cli.py checks what they import).
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

STATE_STYLES = {"succeeded": "bold green", "failed": "bold red", "cancelled": "bold yellow", "ready": "green",
                "benchmarking": "cyan", "evaluating": "cyan", "profiling": "cyan", "running": "cyan", "starting": "yellow",
                "queued": "yellow", "unknown": "dim"}
COMPONENT_STYLES = {"ready": "green", "running": "cyan", "starting": "yellow", "failed": "bold red",
                    "exited": "red", "stopped": "dim"}
HEALTH_STYLES = {"healthy": "green", "down": "red", "unknown": "dim"}


def console():
    """A console 120 columns wide when stdout is not a terminal (pipes, files, tests)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, highlight=False)


def markup(text: str, style: str | None) -> str:
    """text (escaped) in rich markup, in style if there is one."""
    from rich.markup import escape

    return f"[{style}]{escape(text)}[/]" if style else escape(text)


def display(path: Path) -> str:
    """Relative to the current directory when inside it (as users type it), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def age_text(when: datetime | str | None, now: datetime | None = None) -> str:
    if when is None:
        return "-"
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            return when
    if when.tzinfo is None:
        when = when.astimezone()
    secs = ((now or datetime.now(timezone.utc)) - when).total_seconds()
    if secs < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} ago"
    return f"{secs:.0f}s ago"


def fmt_num(value: Any, digits: int = 1) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
