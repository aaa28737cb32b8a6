"""Pipeline efficiency of ``facenet train``: real selection rounds versus the model's raw speed.

The model's raw forward and raw train-step throughput are measured on in-memory tensors (the
loop's own compiled ``embed`` and ``train_step`` functions, at the run's batch size). From them
the time a selection round should take is computed: its selection images at raw forward speed
plus its trained images at raw train speed. The real round (``Trainer.train_steps``: sampling,
decoding and augmenting from disk, embedding, triplet selection, training, summaries) is timed
on the same model and batch sizes. Efficiency = computed / real; target >= 85% (real <= 1.18x).

With a GPU: Inception-ResNet-v1 at 160 px, the original's 45 people x 40 images, batch 90,
rounds capped at ``GPU_ROUND_STEPS`` steps. Without one: the ``small`` model on a CPU-sized
round (then the decoding competes with the model for the same cores), timed in process CPU time
so that other processes on a shared host do not count as pipeline overhead.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Comparison

GPU_ROUND_STEPS = 300


def _settings(gpu: bool, quick: bool) -> dict:
    if gpu:
        steps = 60 if quick else GPU_ROUND_STEPS
        return dict(model_def="inception_resnet_v1", image_size=160, batch_size=90,
                    people_per_batch=45, images_per_person=40, round_steps=steps,
                    rounds=2 if quick else 3, raw_calls=5 if quick else 10)  # fmt: skip
    return dict(model_def="small", image_size=64, batch_size=30, people_per_batch=10,
                images_per_person=8, round_steps=40, rounds=2 if quick else 3,
                raw_calls=5 if quick else 10)  # fmt: skip


def _make_images(root: Path, classes: int, per_class: int, size: int) -> Path:
    """Smooth random JPEG images (about the size and decode cost of aligned faces)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"id{c:03d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            small = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((size, size), Image.BILINEAR)
            image.save(folder / f"id{c:03d}_{i + 1:04d}.jpg", quality=90)
    return root


def _clock(cpu: bool) -> float:
    # On a CPU-only host the process's CPU time (all threads) measures the work done, which
    # other processes competing for the cores do not inflate; on a GPU host, wall time.
    return time.process_time() if cpu else time.perf_counter()


def _raw_speed(fn, batch, n: int, cpu: bool) -> float:
    """Images per second of ``fn(batch)`` run ``n`` times back to back (one sync at the end)."""
    out = fn(batch)
    _sync(out)
    start = _clock(cpu)
    for _ in range(n):
        out = fn(batch)
    _sync(out)
    return n * int(batch.shape[0]) / (_clock(cpu) - start)


def _sync(out) -> None:
    if isinstance(out, dict):
        out = out["loss"]
    np.asarray(out)


def run(quick: bool = False) -> list[Comparison]:
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    return [measure(_settings(gpu, quick), gpu)]


def measure(s: dict, gpu: bool, **config: Any) -> Comparison:
    """Time ``s["rounds"]`` real rounds against the computed ones (``_settings``' keys).

    ``config`` adds ``TrainConfig`` fields (``mixed_precision=True``, ...).
    """
    import tensorflow as tf

    from facenet_cli.config import TrainConfig
    from facenet_cli.train.interrupt import SigintFlag
    from facenet_cli.train.reporting import NullReporter
    from facenet_cli.train.settings import resolve_config
    from facenet_cli.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        data = _make_images(base / "data", s["people_per_batch"] + 5, s["images_per_person"],
                            s["image_size"])  # fmt: skip
        config = TrainConfig(
            logs_base_dir=base / "logs", models_base_dir=base / "models", data_dir=str(data),
            model_def=s["model_def"], image_size=s["image_size"], batch_size=s["batch_size"],
            people_per_batch=s["people_per_batch"], images_per_person=s["images_per_person"],
            epoch_size=s["round_steps"], max_nrof_epochs=10_000, learning_rate=0.01, **config,
        )  # fmt: skip
        trainer = Trainer(resolve_config(config), NullReporter())
        trainer.graph.set_learning_rate(0.01)
        images = tf.random.uniform((s["batch_size"], s["image_size"], s["image_size"], 3))
        step = tf.constant(0, tf.int64)

        def train_fn(batch):
            return trainer.objective.train_step(batch, step)

        flag = SigintFlag()

        def one_round() -> None:
            last = min((trainer.epoch + 1) * trainer.config.epoch_size, trainer.stop_step())
            trainer.train_steps(last, 0.01, flag)

        one_round()  # warm-up: traces the functions, fills caches
        trainer.state.set_epoch(trainer.epoch + 1)
        real: list[float] = []
        walls: list[float] = []
        computed: list[float] = []
        details = []
        n_raw = s["raw_calls"]
        for _ in range(s["rounds"]):
            # The best of three short measurements: the raw speeds are the model's best case,
            # so the computed round time is a lower bound and the efficiency conservative.
            fwd = max(_raw_speed(trainer.objective.embed, images, n_raw, not gpu) for _ in range(3))
            trn = max(_raw_speed(train_fn, images, n_raw, not gpu) for _ in range(3))
            start = _clock(not gpu)
            wall = time.perf_counter()
            one_round()
            real.append(_clock(not gpu) - start)
            walls.append(time.perf_counter() - wall)
            trainer.state.set_epoch(trainer.epoch + 1)
            stats = trainer.last_round
            assert stats is not None and stats.steps > 0
            computed.append(stats.embedded / fwd + stats.trained_images / trn)
            details.append((fwd, trn, stats))
        trainer.close()
    fwd, trn, stats = details[-1]
    result = Comparison(
        name=f"train pipeline efficiency ({s['model_def']} {s['image_size']}px, "
        f"{'GPU, wall time' if gpu else 'CPU, process CPU time'})",
        ours="facenet train selection round (real)",
        baseline="raw forward + raw train step (computed)",
        ours_s=real,
        baseline_s=computed,
        target=">= 0.85 (real <= 1.18x computed)",
        notes=f"{s['people_per_batch']}x{s['images_per_person']} images, batch "
        f"{s['batch_size']}, rounds of {stats.steps} steps",
    )
    result.extra.update({
        "efficiency": f"{result.ratio:.3f}",
        "raw_forward_img_s": f"{fwd:.0f}",
        "raw_train_img_s": f"{trn:.0f}",
        "embedded": stats.embedded,
        "trained_images": stats.trained_images,
        "selection_s": f"{stats.selection_s:.3f}",
        "real_round_wall_s": f"{float(np.median(walls)):.3f}",
    })  # fmt: skip
    return result
