"""The embedding head shared by every model: average pool, dropout, bottleneck + batch norm."""

from __future__ import annotations

from typing import Any

from keras import layers

from facenet_cli.models.blocks import batch_norm, l2_regularizer


def embedding_head(
    x: Any, embedding_size: int, keep_probability: float, weight_decay: float
) -> Any:
    """Global average pool, dropout (keep ``keep_probability``), dense ``Bottleneck`` + BN.

    The bottleneck is slim's ``fully_connected`` with batch norm as its normaliser: no bias, a
    beta-only batch norm after it, no activation. The result is the pre-normalisation embedding.
    """
    x = layers.GlobalAveragePooling2D(name="AvgPool")(x)
    x = layers.Dropout(1.0 - keep_probability, name="Dropout")(x)
    x = layers.Dense(
        embedding_size,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=l2_regularizer(weight_decay),
        name="Bottleneck",
    )(x)
    return batch_norm("Bottleneck_BatchNorm")(x)
