"""A run killed with SIGKILL, then started again, ends with the output of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.align.faces import write_dataset


def _command(src: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "facenet_cli.cli",
        "align",
        str(src),
        str(out),
        "--workers",
        "2",
        "--batch-size",
        "1",
        "--image-size",
        "48",
        "--margin",
        "8",
        "--detect-multiple-faces",
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _records(out: Path) -> int:
    journal = out / ".align-journal.jsonl"
    if not journal.exists():
        return 0
    return max(journal.read_bytes().count(b"\n") - 1, 0)


def _snapshot(out: Path) -> dict[str, bytes]:
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and not p.name.startswith(".align-journal"):
            files[str(p.relative_to(out))] = p.read_bytes().replace(str(out).encode(), b"<OUT>")
    return files


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_uninterrupted_output(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_dataset(src, n_per_class=10, canvas_hw=(240, 300))
    Image.fromarray(np.full((100, 100, 3), 30, np.uint8)).save(src / "alice" / "dark.png")
    (src / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    total = 22

    reference = tmp_path / "reference"
    done = subprocess.run(_command(src, reference), env=_env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _command(src, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while _records(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = _records(out)
    assert 0 < killed_at < total, "the run was not killed mid-way"
    assert not (out / "bounding_boxes.txt").exists()
    time.sleep(1.5)  # the workers die with the coordinator (parent-death signal)

    rerun = subprocess.run(_command(src, out), env=_env(), capture_output=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]
    assert _records(out) == total  # nothing was done twice, nothing was lost
    assert _snapshot(out) == _snapshot(reference)
    assert not [p for p in out.rglob("*.tmp")]
    assert (out / "failures.txt").read_text().count("\n") == 2
