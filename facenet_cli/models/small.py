"""A small, fast CNN for CPU work, and its half-resolution variant for tiny source faces.

Built for throughput on a couple of CPU cores at 160 x 160: a strided stem followed at once by a
max pool brings the grid to 40 x 40 before any wide convolution, so most of the work happens at
20 x 20 and below (about 77 M multiply-adds per image, 1.2 M parameters at width 16).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.blocks import ConvBN
from facenet_cli.models.heads import embedding_head


def small(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    width: int = 16,
    **_: Any,
) -> keras.Model:
    """Build the small model from standardised images to the pre-normalisation embedding.

    Stem 3x3/2 (``width``) + max-pool 3x3/2; conv (2 x width) + pool; two convs (4 x width) +
    pool; two convs (8 x width) + pool; two convs (16 x width); global average pool, dropout,
    Bottleneck dense + batch norm (the head of Inception-ResNet-v1). Batch norm follows the
    original's convention (beta, no gamma).

    Args:
        image_size: side of the square input (at least 32).
        embedding_size: size of the bottleneck (the embedding).
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.
        width: channels of the stem; the stages use 2, 4, 8 and 16 times as many.

    Returns:
        A ``keras.Model`` named ``small``.
    """
    wd = weight_decay
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = ConvBN(width, 3, strides=2, weight_decay=wd, name="stem")(inputs)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    x = ConvBN(2 * width, 3, weight_decay=wd, name="stage1_conv1")(x)
    for stage, mult in ((2, 4), (3, 8), (4, 16)):
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"stage{stage - 1}_pool")(x)
        x = ConvBN(mult * width, 3, weight_decay=wd, name=f"stage{stage}_conv1")(x)
        x = ConvBN(mult * width, 3, weight_decay=wd, name=f"stage{stage}_conv2")(x)
    outputs = embedding_head(x, embedding_size, keep_probability, wd)
    return keras.Model(inputs, outputs, name="small")


def demo_small(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> keras.Model:
    """The small model behind a 2 x 2 average pool: the whole face crop at a quarter the cost.

    For faces upscaled from tiny crops (the built-in faces are 25 x 25 px): halving the 160 px
    aligned images loses nothing while the network still sees the whole crop, background
    included.

    Args:
        image_size: side of the square input (even, at least 64).
        embedding_size: size of the embedding.
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.
        **kwargs: passed to ``small`` (``width``).

    Returns:
        A ``keras.Model`` whose last layer is the ``small`` model built for the halved input.
    """
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = layers.AveragePooling2D(2, name="halve")(inputs)
    body = small(image_size // 2, embedding_size, keep_probability, weight_decay, **kwargs)
    return keras.Model(inputs, body(x), name="demo_small")
