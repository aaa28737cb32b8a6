"""TensorFlow's C++ start-up lines stay off a real ``facenet`` process unless debug asks for them.

The process runs with ``TF_CPP_MIN_LOG_LEVEL=3`` in its environment, as every process started by
a ``facenet`` process (which sets it) and every user who quiets TensorFlow by hand has it: that
level hides nothing printed before TensorFlow's logging starts.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent

START_UP_LINES = (
    "oneDNN custom operations",
    "cuda drivers",
    "cudart_stub",
    "TF-TRT",
    "This TensorFlow binary is optimized",
    "absl::InitializeLog",
    "E0000",
    "W0000",
    "I0000",
)


def _embed(tmp_path: Path, **extra: str) -> subprocess.Popen[str]:
    """``facenet embed`` of a broken .keras file: it imports TensorFlow, then fails (exit 3)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    if not extra:
        env.pop("FACENET_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    out = tmp_path / ("debug" if extra else "quiet")
    args = ["embed", tmp_path / "model.keras", tmp_path / "faces", "--out", out / "e.npz"]
    return subprocess.Popen(
        [sys.executable, "-m", "facenet_cli.cli", *map(str, args)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_facenet_process_hides_tensorflow_start_up_lines_unless_debug(tmp_path: Path) -> None:
    (tmp_path / "model.keras").write_bytes(b"not a model")
    rng = np.random.default_rng(0)
    for person in ("a", "b"):
        (tmp_path / "faces" / person).mkdir(parents=True)
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / "faces" / person / f"{person}_0001.png")
    # Both at once: each is mostly one TensorFlow import.
    procs = {"quiet": _embed(tmp_path), "debug": _embed(tmp_path, FACENET_DEBUG="1")}
    outputs = {name: p.communicate(timeout=300)[0] for name, p in procs.items()}

    for name, p in procs.items():
        assert p.returncode == 3, (name, outputs[name][-3000:])
        assert "error: " in outputs[name], (name, outputs[name][-3000:])
    lines = outputs["quiet"].splitlines()
    noise = [line for line in lines if any(s in line for s in START_UP_LINES)]
    assert noise == [], "\n".join(noise)
    # With debug the same run shows them (so the command did reach TensorFlow's start-up).
    assert any(s in outputs["debug"] for s in START_UP_LINES), outputs["debug"][-3000:]
