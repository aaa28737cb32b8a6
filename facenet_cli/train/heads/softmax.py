"""``softmax``: the original's ``train_softmax.py`` logits layer, a dense layer with a bias on the
raw prelogits (Xavier-initialised, slim's L2 weight decay)."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from facenet_cli.train.heads.base import ClassHead


@keras.saving.register_keras_serializable(package="facenet")
class SoftmaxHead(ClassHead):
    """``prelogits @ kernel + bias``; labels are not used."""

    NAME = "softmax"

    def build(self, input_shape: Any) -> None:
        super().build(input_shape)
        self.bias = self.add_weight(name="bias", shape=(self.nrof_classes,), initializer="zeros")

    def call(self, prelogits: Any, labels: Any = None) -> Any:
        prelogits = tf.cast(prelogits, tf.float32)
        return tf.matmul(prelogits, tf.cast(self.kernel, tf.float32)) + self.bias
