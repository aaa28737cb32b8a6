"""The board against the real thing: files written by tf.summary, and the real TensorBoard."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from facenet_cli import events as ev
from tui.tensorboard import start_tensorboard, tensorboard_command

REPO = Path(__file__).resolve().parents[2]


def test_tensorboard_command_is_local_and_shell_free(tmp_path: Path) -> None:
    argv = tensorboard_command(tmp_path, 6123)
    assert argv[-6:] == ["--logdir", str(tmp_path), "--host", "127.0.0.1", "--port", "6123"]
    assert "tensorboard" in " ".join(argv[:3])


@pytest.mark.slow
def test_reads_what_tf_summary_writes(tmp_path: Path) -> None:
    """tf.summary in a separate process (the trainer's way), then the TF-free reader."""
    code = f"""
import tensorflow as tf
from facenet_cli import events as ev
w = tf.summary.create_file_writer({str(tmp_path / "run")!r})
with w.as_default():
    for step in range(50):
        tf.summary.scalar(ev.LOSS, 1.0 / (step + 1), step=step)
        tf.summary.scalar(ev.LEARNING_RATE, tf.constant(0.05, tf.float64), step=step)
        tf.summary.scalar(ev.gpu_tag(ev.GPU_MEMORY_PEAK_MB, "GPU:0"), 100.0 + step, step=step)
    tf.summary.histogram("weights", tf.range(10.0), step=0)
    tf.summary.text("note", "hello", step=0)
w.flush()
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, timeout=300, capture_output=True
    )
    reader = ev.LogdirReader(tmp_path)
    reader.poll(rescan=True)
    run = reader.runs["run"]
    assert set(run.series) == {ev.LOSS, ev.LEARNING_RATE, "gpu/memory_peak_mb/GPU:0"}
    loss = run.series[ev.LOSS]
    assert loss.steps.tolist() == list(range(50))
    assert loss.values[10] == pytest.approx(1 / 11)
    assert run.series[ev.LEARNING_RATE].latest[2] == pytest.approx(0.05)
    assert run.corrupt_records == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_starts_the_real_tensorboard(tmp_path: Path) -> None:
    port = _free_port()
    tb = start_tensorboard(tmp_path, port)
    try:
        assert tb.url == f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 240
        while True:
            assert tb.failure() is None, tb.failure()
            try:
                with urllib.request.urlopen(tb.url, timeout=5) as response:  # noqa: S310
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "TensorBoard did not answer"
                time.sleep(1.0)
    finally:
        tb.stop()
    assert tb.process.poll() is not None
