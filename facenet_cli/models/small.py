"""A small, fast CNN for CPU work: the demo and the tests."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


def small(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    width: int = 32,
    **_: Any,
) -> keras.Model:
    """Four conv stages (width, 2x, 4x, 8x channels), global average pool, dropout, bottleneck.

    Batch norm follows the original's convention (beta, no gamma); the bottleneck dense layer is
    followed by batch norm, as in Inception-ResNet-v1.
    """
    reg = keras.regularizers.L2(weight_decay) if weight_decay > 0 else None

    def conv_bn(x: Any, filters: int, stride: int, name: str) -> Any:
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                          kernel_regularizer=reg, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(momentum=0.995, epsilon=1e-3, scale=False,
                                      name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_relu")(x)

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = conv_bn(inputs, width, 2, "stem")
    for i, mult in enumerate((1, 2, 4, 8)):
        x = conv_bn(x, width * mult, 2 if i else 1, f"stage{i + 1}a")
        x = conv_bn(x, width * mult, 1, f"stage{i + 1}b")
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(1.0 - keep_probability, name="dropout")(x)
    x = layers.Dense(embedding_size, use_bias=False, kernel_regularizer=reg,
                     name="bottleneck")(x)
    x = layers.BatchNormalization(momentum=0.995, epsilon=1e-3, scale=False,
                                  name="bottleneck_bn")(x)
    return keras.Model(inputs, x, name="small")
