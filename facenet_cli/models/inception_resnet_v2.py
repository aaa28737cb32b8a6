"""Inception-ResNet-v2 as the original FaceNet defines it (``models/inception_resnet_v2``).

54,472,928 trainable parameters at embedding size 128.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.blocks import (
    Block8,
    Block17,
    Block35,
    ConvBN,
    Mixed5b,
    ReductionA,
    ReductionB,
)
from facenet_cli.models.heads import embedding_head

TF1_SCOPE = "InceptionResnetV2"


def inception_resnet_v2(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **_: Any,
) -> keras.Model:
    """Build Inception-ResNet-v2 from standardised images to the pre-normalisation embedding.

    Stem (Conv2d_1a..4a, MaxPool_5a), Mixed_5b, 10 x Block35 (scale 0.17), Mixed_6a,
    20 x Block17 (scale 0.10), Mixed_7a, 9 x Block8 (scale 0.20), one Block8 without activation,
    Conv2d_7b_1x1 (1536), global average pool, dropout, Bottleneck dense + batch norm.

    Args:
        image_size: side of the square input; 75 is the smallest the valid convolutions allow.
        embedding_size: size of the bottleneck (the embedding).
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.

    Returns:
        A ``keras.Model`` named ``inception_resnet_v2``.
    """
    wd = weight_decay

    def conv(x: Any, filters: int, kernel: int, name: str, strides: int = 1,
             padding: str = "same") -> Any:  # fmt: skip
        return ConvBN(filters, kernel, strides, padding, weight_decay=wd, name=name)(x)

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = conv(inputs, 32, 3, "Conv2d_1a_3x3", strides=2, padding="valid")
    x = conv(x, 32, 3, "Conv2d_2a_3x3", padding="valid")
    x = conv(x, 64, 3, "Conv2d_2b_3x3")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_3a_3x3")(x)
    x = conv(x, 80, 1, "Conv2d_3b_1x1", padding="valid")
    x = conv(x, 192, 3, "Conv2d_4a_3x3", padding="valid")
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="MaxPool_5a_3x3")(x)
    x = Mixed5b(weight_decay=wd, name="Mixed_5b")(x)
    for i in range(1, 11):
        x = Block35(0.17, True, 32, (32, 32), (32, 48, 64), weight_decay=wd, name=f"block35_{i}")(x)
    x = ReductionA(256, 256, 384, 384, weight_decay=wd, name="Mixed_6a")(x)
    for i in range(1, 21):
        x = Block17(0.10, True, 192, (128, 160, 192), weight_decay=wd, name=f"block17_{i}")(x)
    x = ReductionB((256, 384), (256, 288), (256, 288, 320), weight_decay=wd, name="Mixed_7a")(x)
    for i in range(1, 10):
        x = Block8(0.20, True, 192, (192, 224, 256), weight_decay=wd, name=f"block8_{i}")(x)
    x = Block8(1.0, False, 192, (192, 224, 256), weight_decay=wd, name="Block8")(x)
    x = conv(x, 1536, 1, "Conv2d_7b_1x1")
    outputs = embedding_head(x, embedding_size, keep_probability, wd)
    return keras.Model(inputs, outputs, name="inception_resnet_v2")
