"""Keep TensorFlow's C++ start-up lines off the terminal unless asked for.

Importing TensorFlow prints oneDNN, CUDA-driver and CPU-feature notices straight to file
descriptor 2 (before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them), and a
machine without a GPU then logs ``failed call to cuInit: ... CUDA error``, which reads like a
failure. Nothing here imports TensorFlow: ``facenet --help`` and ``facenet board`` stay free of it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"


@contextmanager
def quiet_fd2() -> Iterator[None]:
    """Send file descriptor 2 to the null device for the duration (Python errors still raise)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with quiet_fd2():
            self.loader.exec_module(module)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` with file descriptor 2 silenced, then steps aside."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow(debug: bool) -> None:
    """Silence TensorFlow's C++ logging for the rest of the process, unless the user wants it.

    With ``debug``, or when the user set ``TF_CPP_MIN_LOG_LEVEL`` themselves, nothing changes.
    Otherwise the level becomes 3 (errors surface as Python exceptions anyway) and the first
    ``import tensorflow`` runs with file descriptor 2 silenced. Call it before TensorFlow is
    imported; TensorFlow reads the level once, at import.
    """
    if debug or LOG_LEVEL in os.environ:
        return
    os.environ[LOG_LEVEL] = "3"
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
