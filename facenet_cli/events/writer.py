"""The project's event writer: scalars into a new ``events.out.tfevents.*`` file of a run folder.

``train`` writes its summaries with it (``facenet_cli.train.summaries`` adds TensorFlow's
memory figures on top); tests and benchmarks use it too. It writes what TensorBoard's own
``EventFileWriter`` writes (a ``file_version`` event, then one event per call holding all of
that step's scalars as ``simple_value`` fields) without importing TensorFlow: TensorBoard's
writer goes through ``tf.io.gfile`` whenever TensorFlow is installed, and a dashboard or a
benchmark sharing the process must not load it.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from facenet_cli.events.reader import EVENT_FILE_PREFIX
from facenet_cli.events.records import frame_record

_FILE_NUMBER = itertools.count()  # tells apart writers started in the same second


class EventWriter:
    """Appends scalar events to a new event file in ``log_dir``.

    Writes are buffered and pushed to the file every ``flush_secs`` by a background thread
    (as TensorBoard's writer does), on :meth:`flush` and on :meth:`close`; with
    ``flush_secs=0`` every call is flushed at once (live-follow tests and benchmarks).
    Safe to call from several threads.

    Args:
        log_dir: The run's folder (created if missing).
        flush_secs: Seconds between background flushes; 0 flushes every write.
        filename_suffix: Appended to the file name (TensorBoard's writers take the same).
    """

    def __init__(
        self, log_dir: str | os.PathLike[str], *, flush_secs: float = 5.0, filename_suffix: str = ""
    ) -> None:
        # The protobuf classes load on first use, so ``import facenet_cli.events`` stays cheap.
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event_cls = event_pb2.Event
        self._summary_cls = summary_pb2.Summary
        self.log_dir = Path(log_dir)
        if self.log_dir.name.startswith(EVENT_FILE_PREFIX):
            # The writer names its own file (unique per process and writer), as TensorBoard's does.
            raise ValueError(f"{self.log_dir}: give the run's folder, not an event file name")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        name = (
            f"{EVENT_FILE_PREFIX}{int(time.time()):010d}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_FILE_NUMBER)}{filename_suffix}"
        )
        self.path = self.log_dir / name
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._lock = threading.Lock()
        self._dirty = False
        self._closed = threading.Event()
        self.flush_secs = flush_secs
        self._write(self._event_cls(wall_time=time.time(), file_version="brain.Event:2"))
        self.flush()
        self._flusher: threading.Thread | None = None
        if flush_secs > 0:
            self._flusher = threading.Thread(
                target=self._flush_every, name="event-writer-flush", daemon=True
            )
            self._flusher.start()

    def scalars(
        self, values: Mapping[str, float], step: int, wall_time: float | None = None
    ) -> None:
        """Write ``{tag: value}`` at ``step`` as one event (tags from ``facenet_cli.events``)."""
        summary = self._summary_cls(
            value=[
                self._summary_cls.Value(tag=tag, simple_value=float(value))
                for tag, value in values.items()
            ]
        )
        self._write(
            self._event_cls(
                wall_time=time.time() if wall_time is None else wall_time,
                step=int(step),
                summary=summary,
            )
        )

    def add_scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        """Write one scalar at ``step``."""
        self.scalars({tag: value}, step, wall_time)

    def _write(self, event: object) -> None:
        record = frame_record(event.SerializeToString())  # type: ignore[attr-defined]
        with self._lock:
            if self._fh.closed:
                raise ValueError(f"{self.path}: event writer is closed")
            self._fh.write(record)
            self._dirty = True
            if self.flush_secs <= 0:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if self._dirty and not self._fh.closed:
            self._fh.flush()
            self._dirty = False

    def _flush_every(self) -> None:
        while not self._closed.wait(self.flush_secs):
            with self._lock:
                self._flush_locked()

    def flush(self) -> None:
        """Push everything written so far to the file."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Flush and close the file (closing twice is harmless)."""
        self._closed.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        with self._lock:
            self._flush_locked()
            self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
