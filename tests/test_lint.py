"""The project's own static checks run with the tests: ruff (lint + format, including the
dashboard's TensorFlow ban) and mypy on facenet_cli and tui."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_lint_and_format() -> None:
    # A missing linter is a failure, not a skip: the checks (the dashboard's import ban among
    # them) would otherwise pass silently on a machine without the test extra.
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed (pip install -e '.[test]')")
    lint = _run(ruff, "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run(ruff, "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy() -> None:
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed (pip install -e '.[test]')")
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
