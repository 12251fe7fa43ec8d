"""Where things live: the srt-slurm checkout, configs/, logs/."""

from __future__ import annotations

import os
from pathlib import Path

from srt_agent.cluster_config import ClusterConfig

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def srtctl_root(cluster: ClusterConfig) -> Path:
    """srtctl_root from the cluster file, else $SRTCTL_ROOT, else the checkout srtctl runs from; an installed
    wheel has no checkout, so there it is the current directory (like logs/)."""
    default = PACKAGE_ROOT if (PACKAGE_ROOT / "pyproject.toml").is_file() else Path.cwd()
    return Path(cluster.srtctl_root or os.environ.get("SRTCTL_ROOT") or default).resolve()


def configs_dir(cluster: ClusterConfig) -> Path:
    return srtctl_root(cluster) / "configs"


def logs_dir(cluster: ClusterConfig) -> Path:
    return Path(cluster.logs_dir).resolve() if cluster.logs_dir else (Path.cwd() / "logs").resolve()


def display(path: Path) -> str:
    """Relative to the current directory when inside it (as users type it), else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
