"""Forward and train-step throughput of every model at batch 32, 160 x 160, on this CPU.

These are the raw numbers that the training and validation pipelines are measured against.

Forward - ours: ``embedding_fn`` (one ``tf.function``: standardise, forward in inference mode,
L2-normalise); baseline: ``keras.Model.predict`` on the same standardised batch (Keras' own
inference loop, no normalisation).
Train step - ours: one ``tf.function`` step (forward in training mode, triplet loss on the
normalised embeddings plus weight decay, gradients, Adagrad update); baseline: the same step run
eagerly, op by op.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from benchmarks.harness import Comparison, compare

BATCH = 32
IMAGE_SIZE = 160
ALPHA = 0.2
MODELS = ("small", "squeezenet", "inception_resnet_v1", "inception_resnet_v2")
QUICK_MODELS = ("small", "squeezenet")


def _trainable(model: Any) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def _load() -> str:
    """The host's 1-minute load average: on a shared host it says how much to trust a row."""
    return f"load avg {os.getloadavg()[0]:.1f}"


def _train_step(model: Any, optimizer: Any) -> Any:
    import tensorflow as tf

    def step(images: Any) -> Any:
        with tf.GradientTape() as tape:
            embeddings = tf.math.l2_normalize(model(images, training=True), axis=1, epsilon=1e-10)
            # Triplet loss over the first 30 rows (a, p, n, a, p, n, ...): the cost of the loss is
            # negligible next to the network, so the remaining two rows only add forward work.
            triplets = tf.reshape(embeddings[: BATCH - BATCH % 3], (-1, 3, embeddings.shape[-1]))
            anchor, positive, negative = triplets[:, 0], triplets[:, 1], triplets[:, 2]
            pos = tf.reduce_sum(tf.square(anchor - positive), axis=1)
            neg = tf.reduce_sum(tf.square(anchor - negative), axis=1)
            loss = tf.reduce_mean(tf.maximum(pos - neg + ALPHA, 0.0))
            if model.losses:
                loss = loss + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def run(quick: bool = False) -> list[Comparison]:
    import keras
    import tensorflow as tf

    from facenet_cli.models import create_model
    from facenet_cli.models.loading import embedding_fn
    from facenet_cli.models.sidecar import ModelInfo

    rng = np.random.default_rng(0)
    pixels = rng.uniform(0, 255, (BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)
    standardised = tf.image.per_image_standardization(pixels)
    results = []
    for name in QUICK_MODELS if quick else MODELS:
        v2 = name == "inception_resnet_v2"
        forward_repeats = 1 if quick else (3 if v2 else 5)
        train_repeats = 1 if quick else (2 if v2 else 3 if name.startswith("inception") else 5)
        model = create_model(name, embedding_size=128, image_size=IMAGE_SIZE, weight_decay=5e-4)
        info = ModelInfo(name, 128, IMAGE_SIZE, "per_image")
        embed = embedding_fn(model, info, batch_size=BATCH)
        results.append(
            compare(
                f"{name} forward, batch {BATCH} @ {IMAGE_SIZE}px",
                lambda embed=embed: embed(pixels),
                lambda model=model: model.predict(standardised, batch_size=BATCH, verbose=0),
                ours_label="embedding_fn (tf.function)",
                baseline_label="keras Model.predict",
                repeats=forward_repeats,
                units=BATCH,
                unit_name="img",
                notes=f"{_trainable(model):,} trainable params; {_load()}",
            )
        )
        optimizer = keras.optimizers.Adagrad(0.1, initial_accumulator_value=0.1)
        step = _train_step(model, optimizer)
        compiled = tf.function(step)
        results.append(
            compare(
                f"{name} train step, batch {BATCH} @ {IMAGE_SIZE}px",
                lambda compiled=compiled: compiled(standardised).numpy(),
                lambda step=step: step(standardised).numpy(),
                ours_label="tf.function step",
                baseline_label="eager step",
                repeats=train_repeats,
                units=BATCH,
                unit_name="img",
                notes=f"triplet loss + weight decay, Adagrad; {_load()}",
            )
        )
    return results
