"""The board against the real thing: files written by tf.summary, Keras's TensorBoard callback,
tensorboardX (PyTorch's SummaryWriter format) and our own writer, and the real TensorBoard."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from textual.widgets import DataTable
from typer.testing import CliRunner

from facenet_cli import events as ev
from facenet_cli.cli import app
from facenet_cli.config import BoardConfig
from tui.app import BoardApp
from tui.tensorboard import start_tensorboard, tensorboard_command
from tui.widgets import MetricChart

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


def test_the_project_writer_reads_back_in_both_readers(tmp_path: Path) -> None:
    """facenet_cli.events.EventWriter: what it writes, read by our reader and as raw protos."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    with ev.EventWriter(tmp_path / "run", flush_secs=0) as w:
        for step in range(20):
            w.scalars({ev.LOSS: 1.0 / (step + 1), ev.LEARNING_RATE: 0.1}, step, 1e9 + step)
        live = ev.LogdirReader(tmp_path)
        live.poll(rescan=True)  # flushed at every write: visible before close
        assert live.runs["run"].series[ev.LOSS].latest == (19, 1e9 + 19, pytest.approx(0.05))
    assert w.path.parent == tmp_path / "run" and w.path.name.startswith(ev.EVENT_FILE_PREFIX)
    data, events, pos = w.path.read_bytes(), [], 0
    while pos < len(data):  # TFRecord framing, CRCs checked with TensorBoard's own function
        (length,) = struct.unpack_from("<Q", data, pos)
        assert struct.unpack_from("<I", data, pos + 8)[0] == masked_crc32c(data[pos : pos + 8])
        body = data[pos + 12 : pos + 12 + length]
        assert struct.unpack_from("<I", data, pos + 12 + length)[0] == masked_crc32c(body)
        events.append(event_pb2.Event.FromString(body))
        pos += 16 + length
    assert events[0].file_version == "brain.Event:2" and len(events) == 21
    assert [e.step for e in events[1:]] == list(range(20))
    assert {v.tag: v.simple_value for v in events[-1].summary.value} == {
        ev.LOSS: pytest.approx(0.05),
        ev.LEARNING_RATE: pytest.approx(0.1),
    }
    with pytest.raises(ValueError, match="closed"):
        w.add_scalar(ev.LOSS, 1.0, 20)
    with pytest.raises(ValueError, match="not an event file name"):
        ev.EventWriter(tmp_path / "run" / "events.out.tfevents.1.host")


def test_the_project_writer_flushes_in_the_background(tmp_path: Path) -> None:
    w = ev.EventWriter(tmp_path, flush_secs=0.05)
    try:
        size = w.path.stat().st_size  # the file_version event, flushed on open
        w.add_scalar(ev.LOSS, 1.0, 1)
        deadline = time.monotonic() + 10
        while w.path.stat().st_size == size:
            assert time.monotonic() < deadline, "the background flush never came"
            time.sleep(0.02)
    finally:
        w.close()


def _tensorboardx_logdir(root: Path) -> Path:
    """A run as tensorboardX (and so PyTorch's SummaryWriter) writes it, none of facenet's tags."""
    from tensorboardX import SummaryWriter

    logs = root / "logs"
    writer = SummaryWriter(str(logs / "tbx-run"))
    for step in range(30):
        writer.add_scalar("train/nll", 2.0 / (step + 1), step)
        writer.add_scalar("lr", 0.01, step)
    writer.add_scalars("acc", {"train": 0.75, "val": 0.5}, 29)  # folders below the run
    writer.add_histogram("weights", list(range(10)), 0)
    writer.add_text("note", "not a scalar", 0)
    writer.close()
    return logs


TBX_TAGS = {"train/nll", "lr", "acc/train/acc", "acc/val/acc"}


def test_reads_what_tensorboardx_writes_in_once_json(tmp_path: Path) -> None:
    logs = _tensorboardx_logdir(tmp_path)
    reader = ev.LogdirReader(logs)
    reader.poll(rescan=True)
    run = reader.runs["tbx-run"]
    assert set(run.series) == TBX_TAGS and run.corrupt_records == 0
    assert run.series["train/nll"].steps.tolist() == list(range(30))
    result = CliRunner().invoke(app, ["board", "--once", "--json", str(logs)])
    assert result.exit_code == 0, result.output
    (doc,) = json.loads(result.output)["runs"]
    assert set(doc["latest"]) == TBX_TAGS
    assert doc["latest"]["train/nll"] == pytest.approx(2.0 / 30)
    assert doc["latest"]["acc/val/acc"] == pytest.approx(0.5)
    table = CliRunner().invoke(app, ["board", "--once", str(logs)])
    assert "tbx-run: acc/train/acc=0.75, acc/val/acc=0.5, lr=0.01, train/nll=0.06667" in (
        table.output
    )


async def test_a_tensorboardx_run_opens_on_its_scalars(tmp_path: Path) -> None:
    """No facenet panel applies: the board shows every tag of the run, filterable, charted."""
    logs = _tensorboardx_logdir(tmp_path)
    board = BoardApp(BoardConfig(logdir=logs, poll_interval=0.05), notify_alerts=False)
    async with board.run_test(size=(80, 24)) as pilot:
        while not board.loaded.is_set() or board.view != "scalars":
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        table = board.query_one("#tags", DataTable)
        assert [str(k.value) for k in table.rows] == sorted(TBX_TAGS)
        assert board.available == [] and board.tag == "acc/train/acc"
        await pilot.press("slash", *"nll", "enter")
        assert [str(k.value) for k in table.rows] == ["train/nll"]
        assert board.tag == "train/nll"
        chart = board.query_one("#tag-chart", MetricChart)
        assert {line.label: len(line.x) for line in chart.lines}["train/nll"] == 30
        await pilot.press("slash", "ctrl+u", "[", "enter")  # not a regex: nothing matches
        assert table.row_count == 0


@pytest.mark.slow
def test_reads_what_the_keras_tensorboard_callback_writes(tmp_path: Path) -> None:
    """Keras's TensorBoard callback in a separate process: <run>/train and <run>/validation."""
    code = f"""
import numpy as np, keras
rng = np.random.default_rng(0)
x, y = rng.random((64, 4)).astype("float32"), rng.integers(0, 2, 64)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
log = keras.callbacks.TensorBoard(log_dir={str(tmp_path / "logs" / "keras-run")!r})
model.fit(x, y, validation_split=0.25, epochs=3, batch_size=16, verbose=0, callbacks=[log])
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    subprocess.run(
        [sys.executable, "-c", code], check=True, env=env, timeout=300, capture_output=True
    )
    reader = ev.LogdirReader(tmp_path / "logs")
    reader.poll(rescan=True)
    run = reader.runs["keras-run"]
    wanted = {"train/epoch_loss", "train/epoch_accuracy", "validation/epoch_loss"}
    assert wanted <= set(run.series), sorted(run.series)
    assert run.series["train/epoch_loss"].steps.tolist() == [0, 1, 2]
    assert run.series["validation/epoch_loss"].steps.tolist() == [0, 1, 2]
    assert run.corrupt_records == 0
    result = CliRunner().invoke(app, ["board", "--once", "--json", str(tmp_path / "logs")])
    (doc,) = json.loads(result.output)["runs"]
    assert wanted <= set(doc["latest"])
