"""The dashboard's import boundary, checked over every import of every module in ``tui/``.

``tui/`` may import ``facenet_cli.events``, ``facenet_cli.config`` and ``facenet_cli.errors`` and
nothing else of the package, and never TensorFlow, Keras or the detector (the same rule as the
ruff ban in tui/ruff.toml, which names modules one by one; this check also covers new ones).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

ALLOWED = ("facenet_cli.events", "facenet_cli.config", "facenet_cli.errors")
BANNED = ("tensorflow", "keras", "tf_keras", "mtcnn")


def imported_modules(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` for every import; ``from p import x`` counts as ``p.x``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def violations(source: str) -> list[str]:
    """Imports of ``source`` that cross the boundary."""
    out = []
    for line, module in imported_modules(source):
        root = module.split(".")[0]
        if root in BANNED:
            out.append(f"{line}: {module}")
        elif root == "facenet_cli" and not any(
            module == a or module.startswith(a + ".") for a in ALLOWED
        ):
            out.append(f"{line}: {module}")
    return out


@pytest.mark.parametrize("path", sorted((REPO / "tui").glob("*.py")), ids=lambda p: p.name)
def test_tui_module_stays_inside_the_boundary(path: Path) -> None:
    assert violations(path.read_text()) == []


def test_the_check_catches_each_kind_of_crossing() -> None:
    source = (
        "import tensorflow as tf\n"
        "from keras import layers\n"
        "from facenet_cli import models\n"
        "from facenet_cli.train.summaries import host_rss_mb\n"
        "import facenet_cli.cli\n"
        "from facenet_cli import events, errors\n"
        "from facenet_cli.config import BoardConfig\n"
        "def f():\n    import mtcnn\n"
    )
    assert violations(source) == [
        "1: tensorflow",
        "2: keras.layers",
        "3: facenet_cli.models",
        "4: facenet_cli.train.summaries.host_rss_mb",
        "5: facenet_cli.cli",
        "9: mtcnn",
    ]
