"""``cosface`` (Wang et al. 2018, "CosFace: Large Margin Cosine Loss"): the true class's cosine
is lowered by ``m`` and every logit multiplied by ``s``: ``s * (cos(theta_y) - m)``."""

from __future__ import annotations

import keras
import tensorflow as tf

from facenet_cli.train.heads.base import CosineHead


def cosface_logits(cosine: tf.Tensor, labels: tf.Tensor, scale: float, margin: float) -> tf.Tensor:
    """``s * (cos(theta) - m * onehot(y))``."""
    onehot = tf.one_hot(labels, tf.shape(cosine)[1], dtype=cosine.dtype)
    return scale * (cosine - margin * onehot)


@keras.saving.register_keras_serializable(package="facenet")
class CosFaceHead(CosineHead):
    """Published defaults s = 64, m = 0.35."""

    NAME = "cosface"
    DEFAULT_SCALE = 64.0
    DEFAULT_MARGIN = 0.35

    def margin_logits(self, cosine: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return cosface_logits(cosine, labels, self.scale, self.margin)
