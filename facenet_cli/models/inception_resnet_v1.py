"""Inception-ResNet-v1 exactly as the original FaceNet defines it (``models/inception_resnet_v1``).

At 160 x 160 the stem gives 17 x 17 x 256, Reduction-A 8 x 8 x 896 and Reduction-B 3 x 3 x 1792;
22,779,312 trainable parameters at embedding size 128 (23,467,824 at 512), about 1.42 G
multiply-adds per image.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.blocks import Block8, Block17, Block35, ConvBN, ReductionA, ReductionB
from facenet_cli.models.heads import embedding_head

TF1_SCOPE = "InceptionResnetV1"


def inception_resnet_v1(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **_: Any,
) -> keras.Model:
    """Build Inception-ResNet-v1 from standardised images to the pre-normalisation embedding.

    Stem (Conv2d_1a..4b), 5 x Block35 (scale 0.17), Reduction-A (Mixed_6a), 10 x Block17
    (scale 0.10), Reduction-B (Mixed_7a), 5 x Block8 (scale 0.20), one Block8 without activation,
    global average pool to 1792, dropout, Bottleneck dense + batch norm.

    Args:
        image_size: side of the square input; 75 is the smallest the valid convolutions allow.
        embedding_size: size of the bottleneck (the embedding).
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.

    Returns:
        A ``keras.Model`` named ``inception_resnet_v1``.
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
    x = conv(x, 256, 3, "Conv2d_4b_3x3", strides=2, padding="valid")
    for i in range(1, 6):
        x = Block35(scale=0.17, weight_decay=wd, name=f"block35_{i}")(x)
    x = ReductionA(192, 192, 256, 384, weight_decay=wd, name="Mixed_6a")(x)
    for i in range(1, 11):
        x = Block17(scale=0.10, weight_decay=wd, name=f"block17_{i}")(x)
    x = ReductionB(weight_decay=wd, name="Mixed_7a")(x)
    for i in range(1, 6):
        x = Block8(scale=0.20, weight_decay=wd, name=f"block8_{i}")(x)
    x = Block8(scale=1.0, activation=False, weight_decay=wd, name="Block8")(x)
    outputs = embedding_head(x, embedding_size, keep_probability, wd)
    return keras.Model(inputs, outputs, name="inception_resnet_v1")
