"""XLA (``jit_compile``) against plain ``tf.function`` graphs, per model, forward and train step.

Forward - both sides are ``embedding_fn`` (standardise, forward in inference mode, L2-normalise),
ours with ``xla=True``. Train step - one triplet step built from the library's parts
(``create_model`` with weight decay, ``create_optimizer("ADAGRAD")``, ``split_triplets`` /
``triplet_distances``): forward in training mode, loss, gradients, update; ours compiled with
``jit_compile=True``. A ratio above 1 means XLA is faster; the result sets the default of
``--xla`` (see BENCHMARKS.md). Compilation is paid in the warm-up round, outside the timing, and
reported as ``first call`` for both sides.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from benchmarks.harness import Comparison, compare

BATCH = 30  # ten triplets
IMAGE_SIZE = 160
ALPHA = 0.2
MODELS = ("small", "inception_resnet_v1")


def _step(model: Any, optimizer: Any, xla: bool) -> Any:
    import tensorflow as tf

    from facenet_cli.train.loss import split_triplets, triplet_distances

    trainable = model.trainable_variables

    @tf.function(jit_compile=xla)
    def step(images: Any) -> Any:
        with tf.GradientTape() as tape:
            embeddings = tf.math.l2_normalize(model(images, training=True), axis=1, epsilon=1e-10)
            pos, neg = triplet_distances(*split_triplets(embeddings))
            loss = tf.reduce_mean(tf.maximum(pos - neg + ALPHA, 0.0))
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, trainable)
        optimizer.apply_gradients(zip(grads, trainable, strict=True))
        return loss

    return step


def _first_call(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare_model(name: str, *, image_size: int, batch: int, repeats: int) -> list[Comparison]:
    """Forward and train step of ``name`` with and without XLA at ``batch`` x ``image_size``."""
    import tensorflow as tf

    from facenet_cli.models import create_model
    from facenet_cli.models.loading import embedding_fn
    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.train.optimizers import create_optimizer

    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (batch, image_size, image_size, 3)).astype(np.float32)
    standardised = tf.image.per_image_standardization(pixels)
    load = f"load avg {os.getloadavg()[0]:.1f}"
    device = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    results = []
    model = create_model(name, embedding_size=128, image_size=image_size, weight_decay=5e-4)
    info = ModelInfo(name, 128, image_size, "per_image")
    plain = embedding_fn(model, info, batch_size=batch)
    jit = embedding_fn(model, info, batch_size=batch, xla=True)
    first = (_first_call(lambda: jit(pixels)), _first_call(lambda: plain(pixels)))
    fwd = compare(
        f"{name} forward, XLA vs tf.function, batch {batch} @ {image_size}px ({device})",
        lambda: jit(pixels),
        lambda: plain(pixels),
        ours_label="embedding_fn(xla=True)",
        baseline_label="embedding_fn (tf.function)",
        repeats=repeats,
        units=batch,
        unit_name="img",
        notes=load,
    )
    fwd.extra["first call"] = f"{first[0]:.1f} s vs {first[1]:.1f} s"
    diff = float(np.abs(jit(pixels) - plain(pixels)).max())
    fwd.extra["max embedding difference"] = f"{diff:.1e}"
    results.append(fwd)
    # Two models with the same initial weights: each side trains its own copy.
    twin = create_model(name, embedding_size=128, image_size=image_size, weight_decay=5e-4)
    twin.set_weights(model.get_weights())
    steps = {}
    for xla, m in ((True, model), (False, twin)):
        optimizer = create_optimizer("ADAGRAD", 0.01)
        optimizer.build(m.trainable_variables)
        steps[xla] = _step(m, optimizer, xla)
    first = (
        _first_call(lambda: steps[True](standardised).numpy()),
        _first_call(lambda: steps[False](standardised).numpy()),
    )
    train = compare(
        f"{name} train step, XLA vs tf.function, batch {batch} @ {image_size}px ({device})",
        lambda: steps[True](standardised).numpy(),
        lambda: steps[False](standardised).numpy(),
        ours_label="tf.function(jit_compile=True) step",
        baseline_label="tf.function step",
        repeats=repeats,
        units=batch,
        unit_name="img",
        notes=f"triplet loss + weight decay, Adagrad; {load}",
    )
    train.extra["first call"] = f"{first[0]:.1f} s vs {first[1]:.1f} s"
    results.append(train)
    return results


def run(quick: bool = False) -> list[Comparison]:
    results = []
    for name in ("small",) if quick else MODELS:
        repeats = 2 if quick else (5 if name == "small" else 3)
        results += compare_model(name, image_size=IMAGE_SIZE, batch=BATCH, repeats=repeats)
    return results
