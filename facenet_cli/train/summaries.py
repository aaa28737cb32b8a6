"""TensorBoard scalars of a training run (tag names from ``facenet_cli.events`` only)."""

from __future__ import annotations

import resource
from pathlib import Path

import tensorflow as tf

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
        self._writer = tf.summary.create_file_writer(str(log_dir))
        self._gpus = [d.name.split("physical_device:")[-1]
                      for d in tf.config.list_physical_devices("GPU")]  # fmt: skip

    def scalars(self, values: dict[str, float], step: int) -> None:
        """Write ``{tag: value}`` at ``step``; every tag must come from ``facenet_cli.events``."""
        with self._writer.as_default(step=step):
            for tag, value in values.items():
                tf.summary.scalar(tag, float(value))

    def memory(self, step: int) -> dict[str, float]:
        """Current and peak memory per GPU from TensorFlow's allocator, else the host's RSS."""
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
