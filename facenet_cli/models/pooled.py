"""Models that see the whole aligned crop at half resolution, for CPU training on real faces.

``small_pooled`` is the ``small`` model behind a 2 x 2 average pool: a 160 px aligned face
(``facenet align --image-size 160``) is seen whole at 80 px, a quarter of the work of ``small``
at 160 px, while the pairs, the sidecar and ``facenet validate`` keep the aligned size. On a
2-core CPU it trains about four times as many images a minute as ``small`` at 160 px, and face
identity survives the halving (CosFace and ArcFace train at 112 x 112 or 112 x 96).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.small import small


def small_pooled(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> keras.Model:
    """Build ``small`` at ``image_size // 2`` behind a 2 x 2 average pool.

    Args:
        image_size: side of the square input (even, at least 64).
        embedding_size: size of the embedding.
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.
        **kwargs: passed to ``small`` (``width``).

    Returns:
        A ``keras.Model`` named ``small_pooled``.
    """
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = layers.AveragePooling2D(2, name="halve")(inputs)
    body = small(image_size // 2, embedding_size, keep_probability, weight_decay, **kwargs)
    return keras.Model(inputs, body(x), name="small_pooled")
