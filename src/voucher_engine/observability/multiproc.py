"""prometheus-client's multi-process mode, prepared by `serve` before anything imports prometheus-client.

prometheus-client decides when it is first imported whether a process keeps its figures in memory or in files under
PROMETHEUS_MULTIPROC_DIR; so this module imports nothing of it, and `serve` calls `prepare_dir` first thing.
"""

from __future__ import annotations

import os
from pathlib import Path


def prepare_dir(path: Path) -> None:
    """Empty the directory of an earlier run's figures (its `*.db` files only) and point this process and its
    children at it."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
