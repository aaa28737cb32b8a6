"""A size-limited file system for disk-full tests: a tmpfs mounted over a test folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SmallFs:
    """A mounted tmpfs; ``resize`` frees space (a remount keeps the files)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True,
                       capture_output=True, timeout=30)  # fmt: skip


@contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[SmallFs | None]:
    """Mount a ``size`` tmpfs on the empty folder ``path``; yields None where mounting is not
    allowed (not root, no mount binary, a container without CAP_SYS_ADMIN) or when the
    environment sets ``FACENET_FAULTS_NO_MOUNT`` (to exercise the injected-ENOSPC fallback)."""
    path.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    if mount is None or os.environ.get("FACENET_FAULTS_NO_MOUNT"):
        yield None
        return
    done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, timeout=30)  # fmt: skip
    if done.returncode != 0:
        yield None
        return
    try:
        yield SmallFs(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)
