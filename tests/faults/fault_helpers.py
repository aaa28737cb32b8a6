"""Helpers of the fault-injection suite: the CLI as a real subprocess, and its error lines."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# The machine running the suite may be heavily loaded: a TensorFlow import alone can take 30 s.
SLOW_START_S = 300


def cli(*args: str | os.PathLike[str]) -> list[str]:
    """The ``facenet`` command line, run with this interpreter."""
    return [sys.executable, "-m", "facenet_cli.cli", *[os.fspath(a) for a in args]]


def env(**extra: str) -> dict[str, str]:
    """The test environment for a child process (CPU only, quiet TensorFlow, no debug)."""
    out = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    out.pop("FACENET_DEBUG", None)
    out["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), out.get("PYTHONPATH", "")]))
    return out


def run(args: Sequence[str], timeout: float = SLOW_START_S) -> subprocess.CompletedProcess[str]:
    """Run a command to the end; stdout and stderr as text."""
    return subprocess.run(
        list(args), env=env(), cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def run_python(
    code: str, *argv: str, timeout: float = SLOW_START_S
) -> subprocess.CompletedProcess[str]:
    """Run ``python -c code argv...``: test-only hooks go in this way, not in the package."""
    return run([sys.executable, "-c", code, *argv], timeout=timeout)


def assert_one_line_error(
    done: subprocess.CompletedProcess[str] | tuple[int, str], code: int | set[int], *names: object
) -> str:
    """The command failed with ``code``, one ``error:`` line naming each of ``names``, no traceback.

    Returns:
        The error line.
    """
    rc, text = (done.returncode, done.stderr + done.stdout) if not isinstance(done, tuple) else done
    codes = {code} if isinstance(code, int) else code
    assert rc in codes, f"exit {rc}, expected {sorted(codes)}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, f"expected one error line:\n{text[-3000:]}"
    for name in names:
        assert str(name) in errors[0], f"{name} not named in: {errors[0]}"
    return errors[0]


def wait_for(predicate: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float) -> bool:
    """Poll ``predicate`` until true; False when ``proc`` exited first or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return bool(predicate())
        time.sleep(0.01)
    return False
