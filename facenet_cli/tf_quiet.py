"""Keep TensorFlow's C++ start-up lines off the terminal unless asked for.

Importing TensorFlow prints oneDNN, CUDA-driver and CPU-feature notices straight to file
descriptor 2 (before its logging is set up, so ``TF_CPP_MIN_LOG_LEVEL`` cannot hide them), and a
machine without a GPU then logs ``failed call to cuInit: ... CUDA error``, which reads like a
failure. Nothing here imports TensorFlow: ``facenet --help`` and ``facenet board`` stay free of it.

One switch shows everything: ``--debug``, which the command line passes on to every process it
starts as ``FACENET_DEBUG=1`` (see ``debug_requested``). A ``TF_CPP_MIN_LOG_LEVEL`` already in the
environment is no such switch: each ``facenet`` process sets it, its children inherit it, and a
user sets it to 2 or 3 to get *fewer* lines. Only an explicit ``0`` (TensorFlow's "log
everything") leaves the start-up lines alone.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from types import ModuleType

LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
DEBUG = "FACENET_DEBUG"
_OFF = ("", "0", "false", "no", "off")


def debug_requested() -> bool:
    """Whether ``FACENET_DEBUG`` asks for everything (``--debug`` sets it for child processes)."""
    return os.environ.get(DEBUG, "").strip().lower() not in _OFF


def _leave_alone(debug: bool) -> bool:
    return debug or debug_requested() or os.environ.get(LOG_LEVEL, "").strip() == "0"


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
    def __init__(self, loader: importlib.abc.Loader, finder: _QuietTensorFlowImport) -> None:
        self.loader = loader
        self.finder = finder

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            with quiet_fd2():
                self.loader.exec_module(module)
        finally:
            if self.finder in sys.meta_path:
                sys.meta_path.remove(self.finder)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Runs the first ``import tensorflow`` with file descriptor 2 silenced, then steps aside.

    It steps aside once TensorFlow has been executed, not when first asked: a probe such as
    ``importlib.util.find_spec("tensorflow")`` loads nothing and must not use it up.
    """

    def __init__(self) -> None:
        self._finding = False

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "tensorflow" or self._finding:
            return None
        self._finding = True  # the finders after this one answer the inner look-up
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._finding = False
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader, self)
        return spec


def quiet_tensorflow(debug: bool = False) -> None:
    """Silence TensorFlow's C++ start-up lines for the rest of the process, unless asked for.

    Call it first thing in every process that may import TensorFlow (the command line's root
    callback, a worker's entry point); TensorFlow reads the level once, at import. With ``debug``,
    ``FACENET_DEBUG`` or ``TF_CPP_MIN_LOG_LEVEL=0``, nothing changes. Otherwise the level becomes
    3 unless one is set already (errors surface as Python exceptions anyway), and the first
    ``import tensorflow`` runs with file descriptor 2 silenced: whatever the level, that is the
    only way to hide the lines printed before TensorFlow's logging starts.
    """
    if _leave_alone(debug):
        return
    os.environ.setdefault(LOG_LEVEL, "3")
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


def quiet_unless_debug() -> AbstractContextManager[None]:
    """``quiet_fd2`` for TensorFlow's later start-up notices (devices, first traces), unless
    ``FACENET_DEBUG`` or ``TF_CPP_MIN_LOG_LEVEL=0`` asks for them."""
    return nullcontext() if _leave_alone(False) else quiet_fd2()
