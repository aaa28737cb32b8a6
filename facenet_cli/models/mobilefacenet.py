"""MobileFaceNet (Chen et al. 2018): an efficient face-embedding network for CPUs and edge devices.

The paper's network at 112 x 112: a 3x3/2 convolution and a 3x3 depthwise convolution (64
channels), five stages of MobileNetV2 inverted-residual bottlenecks (expansion t, channels c,
repeats n, first stride s: 2/64/5/2, 4/128/1/2, 2/128/6/1, 4/128/1/2, 2/128/2/1), a 1x1
convolution to 512 channels, then the face-specific head: a global depthwise convolution (GDConv,
a depthwise kernel as large as the last feature map, instead of average pooling, so each spatial
position keeps its own weight) and a linear 1x1 convolution to the embedding, both followed by
batch norm. PReLU activations throughout. About 1 M parameters and 0.22 G multiply-adds at
112 px, 1/20 of Inception-ResNet-v1's parameters.

Any input size works: the GDConv kernel is the size of the last feature map (input / 16).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.blocks import BN_EPSILON, BN_MOMENTUM, l2_regularizer

# (expansion t, output channels c, repeats n, stride of the first repeat s), as in the paper.
BOTTLENECK_STAGES = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _bn(x: Any, name: str) -> Any:
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _prelu(x: Any, name: str) -> Any:
    # One slope per channel, shared over the spatial grid (the paper's PReLU).
    return layers.PReLU(shared_axes=[1, 2], name=name)(x)


def _conv(x: Any, filters: int, kernel: int, stride: int, wd: float, name: str,
          activation: bool = True) -> Any:  # fmt: skip
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_regularizer=l2_regularizer(wd), name=f"{name}_conv")(x)  # fmt: skip
    x = _bn(x, f"{name}_bn")
    return _prelu(x, f"{name}_prelu") if activation else x


def _depthwise(x: Any, kernel: int, stride: int, wd: float, name: str, padding: str = "same",
               activation: bool = True) -> Any:  # fmt: skip
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding=padding, use_bias=False,
                               depthwise_regularizer=l2_regularizer(wd),
                               name=f"{name}_dw")(x)  # fmt: skip
    x = _bn(x, f"{name}_bn")
    return _prelu(x, f"{name}_prelu") if activation else x


def _bottleneck(x: Any, expansion: int, filters: int, stride: int, wd: float, name: str) -> Any:
    """Inverted residual: 1x1 expand, 3x3 depthwise (stride), linear 1x1 project (+ input)."""
    channels = int(x.shape[-1])
    y = _conv(x, expansion * channels, 1, 1, wd, f"{name}_expand")
    y = _depthwise(y, 3, stride, wd, f"{name}_depthwise")
    y = _conv(y, filters, 1, 1, wd, f"{name}_project", activation=False)
    if stride == 1 and channels == filters:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def mobilefacenet(
    image_size: int = 112,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **_: Any,
) -> keras.Model:
    """Build MobileFaceNet from standardised images to the pre-normalisation embedding.

    Args:
        image_size: side of the square input (at least 16; the paper uses 112).
        embedding_size: size of the linear 1x1 convolution after GDConv (the embedding).
        keep_probability: dropout keep probability before that last convolution.
        weight_decay: L2 weight decay on every kernel (slim convention).

    Returns:
        A ``keras.Model`` named ``mobilefacenet``.
    """
    wd = weight_decay
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = _conv(inputs, 64, 3, 2, wd, "conv1")
    x = _depthwise(x, 3, 1, wd, "conv2")
    for stage, (expansion, filters, repeats, stride) in enumerate(BOTTLENECK_STAGES, start=1):
        for i in range(repeats):
            x = _bottleneck(x, expansion, filters, stride if i == 0 else 1, wd,
                            f"stage{stage}_block{i + 1}")  # fmt: skip
    x = _conv(x, 512, 1, 1, wd, "conv3")
    grid = (int(x.shape[1]), int(x.shape[2]))
    x = _depthwise(x, grid, 1, wd, "gdconv", padding="valid", activation=False)  # type: ignore[arg-type]
    x = layers.Dropout(1.0 - keep_probability, name="Dropout")(x)
    x = _conv(x, embedding_size, 1, 1, wd, "embedding", activation=False)
    outputs = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, outputs, name="mobilefacenet")
