"""Shared fixtures. Tests use tiny images and tiny models, made here or shipped by packages."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

from facenet_cli.data.pairs_file import LFW_PAIRS as LFW_PAIRS  # the copy the package ships

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep tests away from the user's ~/logs, ~/models; share one demo cache per session."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("FACENET_LOGS", str(base / "logs"))
    monkeypatch.setenv("FACENET_MODELS", str(base / "models"))
    if "FACENET_CACHE" not in os.environ:
        monkeypatch.setenv("FACENET_CACHE", str(base / "cache"))


@pytest.fixture(autouse=True)
def _op_determinism_stays_in_its_test() -> Any:
    """A test that runs the demo in-process turns on op determinism for the whole process
    (``--deterministic``); switch it off again so later tests see TensorFlow's defaults."""
    yield
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config as tf_config

        if tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()


def make_image_tree(root: Path, classes: dict[str, int], size: int = 16, ext: str = ".png") -> Path:
    """Write ``{class: n_images}`` small random PNG/JPEG images under ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, n in classes.items():
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        for i in range(1, n + 1):
            arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{name}_{i:04d}{ext}")
    return root


@pytest.fixture
def image_tree(tmp_path: Path):
    """Factory fixture: ``image_tree({"a": 3, "b": 2})`` -> a dataset root under tmp_path."""

    def make(classes: dict[str, int], size: int = 16, ext: str = ".png", name: str = "ds") -> Path:
        return make_image_tree(tmp_path / name, classes, size=size, ext=ext)

    return make
