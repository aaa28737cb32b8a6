"""Event files for the board's tests, written without TensorFlow.

Framing comes from TensorBoard's own ``RecordWriter`` (an implementation independent of the
reader under test); events are TensorBoard's protobuf classes, laid out the way ``tf.summary``
(TensorFlow 2) and the TensorFlow 1 ``simple_value`` summaries write them.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from facenet_cli.events import EVENT_FILE_PREFIX

# Records written by TensorFlow 2.21's tf.summary.scalar (float32 scalars: loss = 0.5 at step 0,
# lr = 0.1 at step 0, loss = 1.5 at step 1), captured once from a real writer.
TF2_RECORDS_HEX = (
    "09000000b3bfc2da411a0d627261696e2e4576656e743a32",
    "097b8413b3bfc2da412a210a1f0a046c6f737342 0a0801120022040000003f4a0b0a090a077363616c617273",
    "097c8114b3bfc2da412a1f0a1d0a026c72420a080112002204cdcccc3d4a0b0a090a077363616c617273",
    "0959a614b3bfc2da4110012a210a1f0a046c6f7373420a08011200220400 00c03f4a0b0a090a077363616c617273",
)


def tf2_records() -> list[bytes]:
    """The captured TensorFlow 2 records."""
    return [bytes.fromhex(h.replace(" ", "")) for h in TF2_RECORDS_HEX]


def scalar_event(
    tag: str, value: float, step: int, wall_time: float, form: str = "tf2"
) -> event_pb2.Event:
    """One scalar event: ``tf2`` (tensor_content + metadata, as tf.summary writes),
    ``float_val`` (a tensor with the value in float_val), ``double`` or ``simple`` (TF1)."""
    v = summary_pb2.Summary.Value(tag=tag)
    if form == "simple":
        v.simple_value = value
    elif form == "double":
        v.tensor.dtype = 2
        v.tensor.tensor_content = struct.pack("<d", value)
    else:
        v.tensor.dtype = 1
        v.tensor.tensor_shape.SetInParent()
        if form == "float_val":
            v.tensor.float_val.append(value)
        else:
            v.tensor.tensor_content = struct.pack("<f", value)
        v.metadata.plugin_data.plugin_name = "scalars"
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[v]))


class EventLog:
    """Appends events to one event file, flushing after every write (like a live writer)."""

    def __init__(self, path: Path, *, version_event: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = RecordWriter(open(path, "ab"))  # noqa: SIM115 - closed in close()
        if version_event:
            self.event(event_pb2.Event(wall_time=1.0e9, file_version="brain.Event:2"))

    def event(self, event: event_pb2.Event) -> None:
        """Append one event."""
        self.raw(event.SerializeToString())

    def raw(self, data: bytes) -> None:
        """Append one record holding ``data``."""
        self._writer.write(data)
        self._writer.flush()

    def scalar(
        self, tag: str, value: float, step: int, wall_time: float | None = None, form: str = "tf2"
    ) -> None:
        """Append one scalar event (wall time defaults to 1e9 + step)."""
        wall = 1.0e9 + step if wall_time is None else wall_time
        self.event(scalar_event(tag, value, step, wall, form))

    def close(self) -> None:
        """Close the file."""
        self._writer.close()


def event_file(run_dir: Path, stamp: int = 1_000_000_000, suffix: str = "0") -> Path:
    """A TensorFlow-style event-file name in ``run_dir``."""
    return run_dir / f"{EVENT_FILE_PREFIX}{stamp}.testhost.{os.getpid()}.{suffix}.v2"
