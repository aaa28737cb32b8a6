"""Choosing the ``tf.distribute`` strategy of a training run, and the arithmetic of splitting.

``--strategy``:

- ``one``: TensorFlow's default strategy (no replicas; the first GPU, else the CPU).
- ``mirrored``: ``tf.distribute.MirroredStrategy`` over every visible GPU; on a host without
  GPUs, over its logical CPU devices (more than one only when the host was split with
  ``tf.config.set_logical_device_configuration``).
- ``multiworker``: ``tf.distribute.MultiWorkerMirroredStrategy`` configured by the ``TF_CONFIG``
  environment variable (``{"cluster": {"worker": ["host:port", ...]}, "task": {"type":
  "worker", "index": I}}``); the chief is the task of type ``chief``, else worker 0.
- ``auto``: ``mirrored`` when more than one GPU is visible, else ``one``.

Selection stays global: every worker samples the same people (the same seed), the sampled
images are embedded across the replicas and the embeddings all-gathered, triplets are selected
once, and each global batch of triplets is split between the replicas at triplet boundaries.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError

STRATEGIES = ("auto", "one", "mirrored", "multiworker")


@dataclass(frozen=True)
class TaskInfo:
    """Where this process sits in the cluster (a single process is its own chief)."""

    task_type: str | None
    task_id: int
    nrof_workers: int
    cluster_has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The chief writes summaries, checkpoints and exports; the other workers do not."""
        return self.task_type in (None, "chief") or (
            self.task_type == "worker" and self.task_id == 0 and not self.cluster_has_chief
        )


def read_tf_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The parsed ``TF_CONFIG`` (cluster and task), checked for what multi-worker needs.

    Raises:
        InputError: ``TF_CONFIG`` missing, not JSON, or without a cluster and a task.
    """
    env = os.environ if environ is None else environ
    text = env.get("TF_CONFIG", "").strip()
    if not text:
        raise InputError(
            '--strategy multiworker needs TF_CONFIG, e.g. {"cluster": {"worker": '
            '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"TF_CONFIG is not valid JSON ({exc})") from None
    cluster = data.get("cluster") if isinstance(data, dict) else None
    task = data.get("task") if isinstance(data, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise InputError('TF_CONFIG needs a "cluster" and a "task" ({"type": ..., "index": ...})')
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(index, int) or \
            not 0 <= index < len(cluster[task_type]):  # fmt: skip
        raise InputError(f"TF_CONFIG task {task} is not in its cluster {sorted(cluster)}")
    return data


def task_info(strategy_name: str, environ: dict[str, str] | None = None) -> TaskInfo:
    """This process's role: from ``TF_CONFIG`` for ``multiworker``, else a lone chief."""
    if strategy_name != "multiworker":
        return TaskInfo(None, 0, 1)
    data = read_tf_config(environ)
    cluster, task = data["cluster"], data["task"]
    workers = sum(len(cluster.get(kind, [])) for kind in ("chief", "worker"))
    return TaskInfo(task["type"], int(task.get("index", 0)), workers, "chief" in cluster)


def create_strategy(name: str) -> Any:
    """The ``tf.distribute`` strategy for ``--strategy name`` (see the module docstring).

    ``multiworker`` must be created before TensorFlow runs any op in this process.

    Raises:
        InputError: an unknown name, or ``multiworker`` without a usable ``TF_CONFIG``.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise InputError(f"--strategy {name!r}: choose {', '.join(STRATEGIES)}")
    if name == "multiworker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=cpus)
    return tf.distribute.get_strategy()


def is_distributed(strategy: Any) -> bool:
    """True for a real strategy (replicas, collectives); False for TensorFlow's default one."""
    import tensorflow as tf

    return isinstance(
        strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    )


def check_global_batch(batch_size: int, nrof_replicas: int) -> int:
    """The per-replica batch of a global ``batch_size`` (whole triplets on every replica).

    Raises:
        InputError: ``batch_size`` is not a multiple of ``3 x nrof_replicas``.
    """
    unit = 3 * nrof_replicas
    if batch_size % unit != 0:
        lower = max(unit, batch_size - batch_size % unit)
        raise InputError(
            f"--batch-size {batch_size} does not divide into whole triplets on "
            f"{nrof_replicas} replicas (it must be a multiple of 3 x {nrof_replicas} = {unit}); "
            f"use e.g. {lower} or {lower + unit}"
        )
    return batch_size // nrof_replicas


def split_bounds(nrof_items: int, nrof_parts: int, unit: int = 1) -> np.ndarray:
    """Boundaries splitting ``nrof_items`` into ``nrof_parts`` near-equal runs of whole units.

    Part ``r`` is ``[bounds[r], bounds[r + 1])``; parts differ by at most one unit and the
    earlier parts take the remainder. ``unit=3`` never splits a triplet (rows a, p, n).

    Raises:
        ValueError: ``nrof_items`` is not a multiple of ``unit``.
    """
    if nrof_items % unit != 0:
        raise ValueError(f"{nrof_items} items are not whole units of {unit}")
    units = nrof_items // unit
    counts = np.full(nrof_parts, units // nrof_parts, dtype=np.int64)
    counts[: units % nrof_parts] += 1
    return np.concatenate([[0], np.cumsum(counts)]) * unit


def local_span(
    nrof_items: int, nrof_parts: int, local_parts: list[int], unit: int = 1
) -> tuple[int, int]:
    """The items ``[start, stop)`` of a global batch that this worker's replicas take.

    A worker's replicas have consecutive ids, so their parts of ``split_bounds`` are one run;
    the worker decodes only those images.
    """
    bounds = split_bounds(nrof_items, nrof_parts, unit)
    first, last = min(local_parts), max(local_parts)
    if sorted(local_parts) != list(range(first, last + 1)):
        raise ValueError(f"replicas {local_parts} of a worker are not consecutive")
    return int(bounds[first]), int(bounds[last + 1])


def mixed_precision_policy(has_gpu: bool) -> str:
    """``mixed_float16`` on GPUs (with loss scaling), ``mixed_bfloat16`` elsewhere."""
    return "mixed_float16" if has_gpu else "mixed_bfloat16"


def worker_dir(task: TaskInfo) -> Path:
    """A private scratch directory for a non-chief worker's writes (removed by ``cleanup``).

    TensorFlow's multi-worker guide has every worker save (saving may run collectives), the
    chief to the real directory and the others to a temporary one they delete afterwards.
    """
    return Path(tempfile.mkdtemp(prefix=f"facenet-{task.task_type}-{task.task_id}-"))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
