"""The CPU cores this process may use (its affinity mask where the platform has one)."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """Cores available to this process: a container's or ``taskset``'s limit, not the host's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
