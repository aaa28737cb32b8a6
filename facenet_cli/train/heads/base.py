"""What every classifier head shares: the class weights, their decay, the config round trip."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from facenet_cli.models.blocks import l2_regularizer

NORM_EPSILON = 1e-10


def cosine_logits(embeddings: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``cos(theta)`` between each row of ``embeddings`` ``(N, D)`` and each column of ``weights``
    ``(D, C)``, both L2-normalised first; ``(N, C)``."""
    x = tf.math.l2_normalize(embeddings, axis=1, epsilon=NORM_EPSILON)
    w = tf.math.l2_normalize(weights, axis=0, epsilon=NORM_EPSILON)
    return tf.matmul(x, w)


class ClassHead(keras.layers.Layer):
    """The class weights ``kernel`` ``(D, C)`` of a head (L2 weight decay, slim convention).

    Args:
        nrof_classes: the training identities.
        scale: the margin heads' ``s`` (None: the head's ``DEFAULT_SCALE``).
        margin: the margin heads' ``m`` (None: the head's ``DEFAULT_MARGIN``).
        easy_margin: ArcFace only: margin only for positive cosines.
        weight_decay: L2 weight decay on the class weights.
        **kwargs: standard layer arguments.

    Call with ``(prelogits, labels)``; ``labels`` may be None for inference (a margin head then
    gives its plain scaled cosines).
    """

    NAME = ""
    DEFAULT_SCALE = 1.0
    DEFAULT_MARGIN = 0.0

    def __init__(self, nrof_classes: int, scale: float | None = None, margin: float | None = None,
                 easy_margin: bool = False, weight_decay: float = 0.0,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.nrof_classes = int(nrof_classes)
        self.scale = float(self.DEFAULT_SCALE if scale is None else scale)
        self.margin = float(self.DEFAULT_MARGIN if margin is None else margin)
        self.easy_margin = bool(easy_margin)
        self.weight_decay = float(weight_decay)

    def build(self, input_shape: Any) -> None:
        shape = input_shape[0] if isinstance(input_shape, (list, tuple)) and \
            isinstance(input_shape[0], (list, tuple)) else input_shape  # fmt: skip
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(shape[-1]), self.nrof_classes),
            initializer="glorot_uniform",
            regularizer=l2_regularizer(self.weight_decay),
        )

    def compute_output_shape(self, input_shape: Any) -> tuple[int | None, int]:
        return (None, self.nrof_classes)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(nrof_classes=self.nrof_classes, scale=self.scale, margin=self.margin,
                      easy_margin=self.easy_margin, weight_decay=self.weight_decay)  # fmt: skip
        return config


class CosineHead(ClassHead):
    """A margin head: logits from the cosines between the normalised prelogits and the normalised
    class weights; subclasses say how the true class's cosine is penalised (``margin_logits``)."""

    def margin_logits(self, cosine: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def call(self, prelogits: Any, labels: Any = None) -> Any:
        cosine = cosine_logits(tf.cast(prelogits, tf.float32), tf.cast(self.kernel, tf.float32))
        if labels is None:
            return self.scale * cosine
        return self.margin_logits(cosine, labels)
