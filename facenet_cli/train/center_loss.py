"""Center loss (Wen et al. 2016) as the original's ``facenet.center_loss`` computes it.

Each class keeps a center of its prelogits (not trained by gradient). A step's loss is the mean
squared distance of each prelogit to its class's center as it was before the step, and each
center seen in the batch moves towards its samples: ``c -= (1 - alfa) * (c - x)`` once per
sample (the original's ``scatter_sub``: a class present k times moves k times).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="facenet")
class CenterLoss(keras.layers.Layer):
    """The class centers and the center-loss step.

    Args:
        nrof_classes: the training identities.
        alfa: the centers' update rate ``alfa`` of the original (``--center-loss-alfa``; the
            centers move by ``1 - alfa`` of the difference per sample).
        **kwargs: standard layer arguments.
    """

    def __init__(self, nrof_classes: int, alfa: float = 0.95, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.nrof_classes = int(nrof_classes)
        self.alfa = float(alfa)

    def build(self, input_shape: Any) -> None:
        self.centers = self.add_weight(
            name="centers",
            shape=(self.nrof_classes, int(input_shape[-1])),
            initializer="zeros",
            trainable=False,
            # Under a distribution strategy every replica applies the same (all-gathered)
            # update; the first replica's value is kept.
            aggregation="only_first_replica",
        )

    def call(self, features: Any, labels: Any) -> Any:
        """Update the centers of ``labels`` and return the loss against the old centers."""
        loss = self.distance(features, labels)
        self.move_centers(features, labels)
        return loss

    def distance(self, features: Any, labels: Any) -> Any:
        """``mean((features - centers[labels])^2)`` (over samples and features)."""
        centers_batch = tf.gather(tf.convert_to_tensor(self.centers), labels)
        return tf.reduce_mean(tf.square(tf.cast(features, tf.float32) - centers_batch))

    def move_centers(self, features: Any, labels: Any) -> None:
        """``c[y] -= (1 - alfa) * (c[y] - x)`` once per sample (the original's scatter_sub)."""
        centers = tf.convert_to_tensor(self.centers)
        features = tf.stop_gradient(tf.cast(features, tf.float32))
        diff = (1.0 - self.alfa) * (tf.gather(centers, labels) - features)
        self.centers.assign(tf.tensor_scatter_nd_sub(centers, tf.expand_dims(labels, 1), diff))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(nrof_classes=self.nrof_classes, alfa=self.alfa)
        return config
