"""Classifier heads for training embeddings: softmax, ArcFace and CosFace logits.

Each head is a Keras layer that owns the class weights and maps ``(prelogits, labels)`` to the
logits fed to softmax cross-entropy. It lives outside the embedding model, so the exported model
never contains it.

* ``softmax``: the original's ``train_softmax.py`` logits layer, a dense layer with a bias on the
  raw prelogits (Xavier-initialised, slim's L2 weight decay).
* ``cosface`` (Wang et al. 2018, "CosFace: Large Margin Cosine Loss"): the cosine between the
  L2-normalised embedding and the L2-normalised class weight; the true class's cosine is lowered
  by ``m`` and every logit multiplied by ``s``: ``s * (cos(theta_y) - m)``.
* ``arcface`` (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss"): the margin is added
  to the angle, ``s * cos(theta_y + m)``. Past ``theta_y > pi - m`` the angle plus margin wraps
  around and the logit would rise again, so there the published implementation uses
  ``cos(theta_y) - m * sin(m)`` instead (a CosFace-like penalty that keeps the logit monotonic);
  ``easy_margin`` applies the margin only where ``cos(theta_y) > 0``.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf

from facenet_cli.config import CLASSIFIER_LOSSES
from facenet_cli.models.blocks import l2_regularizer

# Published defaults (scale s, margin m): ArcFace s=64, m=0.5; CosFace s=64, m=0.35.
MARGIN_DEFAULTS: dict[str, tuple[float, float]] = {
    "arcface": (64.0, 0.5),
    "cosface": (64.0, 0.35),
}
NORM_EPSILON = 1e-10


def cosine_logits(embeddings: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``cos(theta)`` between each row of ``embeddings`` ``(N, D)`` and each column of ``weights``
    ``(D, C)``, both L2-normalised first; ``(N, C)``."""
    x = tf.math.l2_normalize(embeddings, axis=1, epsilon=NORM_EPSILON)
    w = tf.math.l2_normalize(weights, axis=0, epsilon=NORM_EPSILON)
    return tf.matmul(x, w)


def cosface_logits(cosine: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """``s * (cos(theta) - m * onehot(y))``."""
    onehot = tf.one_hot(labels, tf.shape(cosine)[1], dtype=cosine.dtype)
    return scale * (cosine - margin * onehot)


def arcface_logits(
    cosine: tf.Tensor, labels: tf.Tensor, scale: float, margin: float, easy_margin: bool = False
) -> tf.Tensor:
    """``s * cos(theta + m)`` for the true class, ``s * cos(theta)`` for the others.

    Without ``easy_margin`` the true class falls back to ``cos(theta) - m * sin(m)`` where
    ``theta + m`` would pass ``pi`` (``cos(theta) <= cos(pi - m)``); with it the margin applies
    only where ``cos(theta) > 0``.
    """
    cosine = tf.clip_by_value(cosine, -1.0, 1.0)
    sine = tf.sqrt(tf.maximum(1.0 - tf.square(cosine), 0.0))
    phi = cosine * math.cos(margin) - sine * math.sin(margin)
    if easy_margin:
        phi = tf.where(cosine > 0.0, phi, cosine)
    else:
        threshold = math.cos(math.pi - margin)
        phi = tf.where(cosine > threshold, phi, cosine - margin * math.sin(margin))
    classes = tf.range(tf.shape(cosine)[1], dtype=labels.dtype)
    is_true = tf.equal(classes[None, :], labels[:, None])
    return scale * tf.where(is_true, phi, cosine)


@keras.saving.register_keras_serializable(package="facenet")
class ClassifierHead(keras.layers.Layer):
    """Class weights and the logits of one loss: ``softmax``, ``arcface`` or ``cosface``.

    Args:
        nrof_classes: the training identities.
        loss: ``softmax`` (a dense layer on the raw prelogits), ``arcface`` or ``cosface``.
        scale: the margin losses' ``s`` (None: the published default).
        margin: the margin losses' ``m`` (None: the published default).
        easy_margin: ArcFace only: margin only for positive cosines (see ``arcface_logits``).
        weight_decay: L2 weight decay on the class weights (slim convention).
        **kwargs: standard layer arguments.

    Call with ``(prelogits, labels)``; ``labels`` may be None for the softmax head and for
    inference (the plain scaled cosines).
    """

    def __init__(
        self,
        nrof_classes: int,
        loss: str = "softmax",
        scale: float | None = None,
        margin: float | None = None,
        easy_margin: bool = False,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if loss not in CLASSIFIER_LOSSES:
            raise ValueError(f"unknown classifier loss {loss!r}: choose {CLASSIFIER_LOSSES}")
        default_scale, default_margin = MARGIN_DEFAULTS.get(loss, (1.0, 0.0))
        self.nrof_classes = int(nrof_classes)
        self.loss = loss
        self.scale = float(default_scale if scale is None else scale)
        self.margin = float(default_margin if margin is None else margin)
        self.easy_margin = bool(easy_margin)
        self.weight_decay = float(weight_decay)

    def build(self, input_shape: Any) -> None:
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple)) else input_shape  # fmt: skip
        dim = int(shape[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(dim, self.nrof_classes),
            initializer="glorot_uniform",
            regularizer=l2_regularizer(self.weight_decay),
        )
        if self.loss == "softmax":
            self.bias = self.add_weight(name="bias", shape=(self.nrof_classes,),
                                        initializer="zeros")  # fmt: skip

    def call(self, prelogits: Any, labels: Any = None) -> Any:
        prelogits = tf.cast(prelogits, tf.float32)
        if self.loss == "softmax":
            return tf.matmul(prelogits, tf.cast(self.kernel, tf.float32)) + self.bias
        cosine = cosine_logits(prelogits, tf.cast(self.kernel, tf.float32))
        if labels is None:
            return self.scale * cosine
        if self.loss == "cosface":
            return cosface_logits(cosine, labels, self.scale, self.margin)
        return arcface_logits(cosine, labels, self.scale, self.margin, self.easy_margin)

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (None, self.nrof_classes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            nrof_classes=self.nrof_classes,
            loss=self.loss,
            scale=self.scale,
            margin=self.margin,
            easy_margin=self.easy_margin,
            weight_decay=self.weight_decay,
        )
        return config


def classifier_accuracy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Share of rows whose largest logit is the true class."""
    predicted = tf.argmax(logits, axis=1, output_type=labels.dtype)
    return tf.reduce_mean(tf.cast(tf.equal(predicted, labels), tf.float32))


def prelogits_norm(prelogits: tf.Tensor, p: float) -> tf.Tensor:
    """The original's ``mean(|prelogits + 1e-4|_p)`` over the batch (its norm penalty)."""
    return tf.reduce_mean(tf.norm(tf.abs(prelogits) + 1e-4, ord=p, axis=1))
