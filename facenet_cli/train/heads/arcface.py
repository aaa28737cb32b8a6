"""``arcface`` (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss"): the margin is added
to the angle, ``s * cos(theta_y + m)``.

Past ``theta_y > pi - m`` the angle plus margin wraps around and the logit would rise again, so
there the published implementation uses ``cos(theta_y) - m * sin(m)`` instead (a CosFace-like
penalty that keeps the logit monotonic); ``easy_margin`` applies the margin only where
``cos(theta_y) > 0``.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from facenet_cli.train.heads.base import CosineHead


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
class ArcFaceHead(CosineHead):
    """Published defaults s = 64, m = 0.5."""

    NAME = "arcface"
    DEFAULT_SCALE = 64.0
    DEFAULT_MARGIN = 0.5

    def margin_logits(self, cosine: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        return arcface_logits(cosine, labels, self.scale, self.margin, self.easy_margin)
