"""TensorBoard scalars of a training run (tag names from ``facenet_cli.events`` only).

Written with TensorBoard's own event-file writer (a background thread, no TensorFlow op per
value): one event per call holds all of that step's scalars as ``simple_value`` fields, which
TensorBoard, its ``event_accumulator`` and ``facenet board`` all read. ``tf.summary.scalar``
costs a few eager ops per value, a visible share of a small model's step.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from facenet_cli import events


def host_rss_mb() -> float:
    """Resident memory of this process in MiB (current, from /proc; peak where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Summaries:
    """Writes scalars to ``<log_dir>/events.out.tfevents.*``, each at its own global step."""

    def __init__(self, log_dir: Path) -> None:
        import tensorflow as tf

        self._writer = EventFileWriter(str(log_dir), max_queue_size=100, flush_secs=5)
        self._gpus = [d.name.split("physical_device:")[-1]
                      for d in tf.config.list_physical_devices("GPU")]  # fmt: skip

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write ``{tag: value}`` at ``step``; every tag must come from ``facenet_cli.events``."""
        summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value))
                                 for tag, value in values.items()])  # fmt: skip
        self._writer.add_event(Event(wall_time=time.time(), step=int(step), summary=summary))

    def memory(self, step: int) -> dict[str, float]:
        """Current and peak memory per GPU from TensorFlow's allocator, else the host's RSS."""
        import tensorflow as tf

        values: dict[str, float] = {}
        for device in self._gpus:
            try:
                info = tf.config.experimental.get_memory_info(device)
            except (ValueError, tf.errors.OpError):
                continue
            values[events.gpu_tag(events.GPU_MEMORY_CURRENT_MB, device)] = info["current"] / 2**20
            values[events.gpu_tag(events.GPU_MEMORY_PEAK_MB, device)] = info["peak"] / 2**20
        if not values:
            values[events.HOST_RSS_MB] = host_rss_mb()
        self.scalars(values, step)
        return values

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def report_metrics(report: Any) -> dict[str, float]:
    """The scalar figures of a ``ValidationReport`` under the ``lfw/*`` tags.

    VAL and FAR are left out when no fold reaches the FAR target (they would be NaN).
    """
    result = report.result
    accuracy = np.asarray(result.accuracy, dtype=np.float64)
    values = {
        events.LFW_ACCURACY: float(np.mean(accuracy)),
        events.LFW_ACCURACY_STD: float(np.std(accuracy)),
        events.LFW_AUC: float(result.auc),
        events.LFW_EER: float(result.eer),
    }
    for tag, data in ((events.LFW_VAL_RATE, result.val), (events.LFW_FAR, result.far)):
        data = np.asarray(data, dtype=np.float64)
        if np.any(np.isfinite(data)):
            values[tag] = float(np.nanmean(data))
    return {k: v for k, v in values.items() if math.isfinite(v)}
