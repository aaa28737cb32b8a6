"""The embedding computation every model form shares, and ``EmbeddingModel``, its loaded form.

``EmbeddingModel.embed`` takes RAW pixels (float32 0..255, ``(N, S, S, 3)``, RGB), applies the
model's own preprocessing (colour order, standardisation, both stated in its ``model.json``) and
returns L2-normalised embeddings, always in inference mode. ``embedding_fn`` wraps an in-memory
Keras model the same way, and ``embed_tensor`` is the one TensorFlow definition of that
computation, shared with the export. The loaders of each model format (``loading.py``,
``frozen_graph.py``, ``onnx_model.py``, ``tflite_model.py``) build on this module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.models.sidecar import ModelInfo

EMBED_BATCH = 128  # images per forward pass inside ``embed``; bounds memory for big models

EmbedFn = Callable[[np.ndarray], np.ndarray]


def standardize_tensor(images: Any, mode: str) -> Any:
    """Standardise a float32 batch of raw pixels: ``per_image``, ``fixed`` or ``none``.

    The same function the data pipeline uses, so training and export cannot drift apart.
    """
    from facenet_cli.data.pipeline import standardize

    return standardize(images, mode)


def preprocess_tensor(info: ModelInfo, images: Any) -> Any:
    """Raw pixels (any real dtype, RGB) -> the network's input: colour order, standardisation."""
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if info.color_order == "BGR":
        x = x[..., ::-1]
    return standardize_tensor(x, info.standardization)


def network_tensor(keras_model: Any, info: ModelInfo, x: Any) -> Any:
    """Preprocessed images -> L2-normalised embeddings, in inference mode (the graph exports)."""
    import tensorflow as tf

    if not info.flip_fusion:
        prelogits = keras_model(x, training=False)
        # The original normalises with epsilon 1e-10 (tf.nn.l2_normalize(prelogits, 1, 1e-10)).
        return tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)
    # One forward pass over the faces and their mirror images; each half normalised, summed and
    # normalised again, so a face and its mirror image have the same embedding.
    both = tf.math.l2_normalize(
        keras_model(tf.concat([x, x[:, :, ::-1, :]], axis=0), training=False),
        axis=1, epsilon=1e-10,
    )  # fmt: skip
    face, mirror = tf.split(both, 2, axis=0)
    return tf.math.l2_normalize(face + mirror, axis=1, epsilon=1e-10)


def embed_tensor(keras_model: Any, info: ModelInfo, images: Any) -> Any:
    """Raw pixels (any real dtype, RGB) -> L2-normalised embeddings, in inference mode.

    This is the single definition of the embedding computation: the in-memory wrapper, the
    loaded models and the exported SavedModel all run exactly this (``preprocess_tensor`` then
    ``network_tensor``; the graph exports hold the second half).
    """
    return network_tensor(keras_model, info, preprocess_tensor(info, images))


def l2_normalised(out: np.ndarray) -> np.ndarray:
    """Numpy rows L2-normalised as the original does (epsilon 1e-10); idempotent on unit rows."""
    flat = np.asarray(out, np.float32).reshape(len(out), -1)
    norms = np.sqrt(np.maximum(np.sum(flat * flat, axis=1, keepdims=True), 1e-10))
    return flat / norms


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def batched(fn: Callable[[Any], Any], info: ModelInfo, batch_size: int) -> EmbedFn:
    size = info.image_size

    def embed(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected images of shape (N, {size}, {size}, 3), got {tuple(images.shape)}"
            )
        if len(images) == 0:
            return np.zeros((0, info.embedding_size), np.float32)
        images = images.astype(np.float32, copy=False)
        parts = [
            np.asarray(fn(images[i : i + batch_size]), dtype=np.float32)
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts, axis=0)

    return embed


def embedding_fn(
    keras_model: Any, info: ModelInfo, batch_size: int = EMBED_BATCH, *, xla: bool = False
) -> EmbedFn:
    """Wrap an in-memory Keras model as ``raw pixel batch -> L2-normalised embeddings``.

    The wrapper reads the model's current weights at every call (the training loop evaluates
    through it between epochs) and always runs in inference mode.

    Args:
        keras_model: a model from ``create_model`` (standardised images -> prelogits).
        info: its sidecar (image size, standardisation, colour order).
        batch_size: images per forward pass.
        xla: compile the forward pass with XLA (``jit_compile``; one compilation per batch
            shape, so a run's last, shorter batch compiles once more).

    Returns:
        A function taking float32 raw pixels ``(N, S, S, 3)`` and returning ``(N, D)`` numpy.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, info.image_size, info.image_size, 3), tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True, jit_compile=xla)
    def forward(images: Any) -> Any:
        return embed_tensor(keras_model, info, images)

    return batched(forward, info, batch_size)


@dataclass
class EmbeddingModel:
    """A loaded embedding model.

    Attributes:
        info: the model's sidecar.
        source: what it was loaded from (run dir, checkpoint prefix, file or folder).
        keras_model: the Keras model when the source holds one (None for a bare SavedModel).
        kind: ``checkpoint``, ``tf1_checkpoint``, ``keras``, ``saved_model``,
            ``frozen_graph``, ``onnx`` or ``tflite`` (the rows of ``loading.FORMATS``).
        assumed: what the loader assumed for lack of a sidecar (the preprocessing), as one
            line for the user; None when the sidecar said it all.
    """

    info: ModelInfo
    source: Path
    keras_model: Any = None
    kind: str = "checkpoint"
    handle: Any = field(default=None, repr=False)  # keeps a loaded SavedModel alive
    assumed: str | None = None
    _embed: EmbedFn | None = field(default=None, repr=False)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Float32 raw pixels ``(N, S, S, 3)`` 0..255 RGB -> L2-normalised ``(N, D)``."""
        if self._embed is None:
            self._embed = embedding_fn(self.keras_model, self.info)
        return self._embed(images)

    def embedder(self, *, xla: bool = False) -> EmbedFn:
        """The function behind ``embed``; ``xla`` compiles a Keras model's forward pass with XLA.

        A bare SavedModel, a frozen graph, an ONNX or a TFLite model runs the graph it was
        saved with, so ``xla`` does not apply to it.
        """
        if xla and self.keras_model is not None:
            return embedding_fn(self.keras_model, self.info, xla=True)
        return self.embed
