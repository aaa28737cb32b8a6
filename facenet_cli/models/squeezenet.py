"""SqueezeNet as the original FaceNet defines it (``models/squeezenet``).

1,376,552 trainable parameters at embedding size 128.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers

from facenet_cli.models.blocks import ConvBN, batch_norm, l2_regularizer

TF1_SCOPE = "squeezenet"


@keras.saving.register_keras_serializable(package="facenet")
class Fire(layers.Layer):
    """A fire module: 1x1 squeeze, then 1x1 and 3x3 expand convolutions concatenated.

    Args:
        squeeze: filters of the squeeze convolution.
        expand: filters of each expand convolution (the output has ``2 * expand`` channels).
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    def __init__(self, squeeze: int, expand: int, weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.squeeze = int(squeeze)
        self.expand = int(expand)
        self.weight_decay = float(weight_decay)
        self.squeeze_conv = ConvBN(self.squeeze, 1, weight_decay=self.weight_decay, name="squeeze")
        self.expand_1x1 = ConvBN(self.expand, 1, weight_decay=self.weight_decay, name="expand_1x1")
        self.expand_3x3 = ConvBN(self.expand, 3, weight_decay=self.weight_decay, name="expand_3x3")

    def tf1_units(self) -> list[tuple[str, layers.Layer]]:
        """``(relative TF1 scope, layer)`` for every convolution of the module."""
        return [
            ("squeeze", self.squeeze_conv),
            ("expand/1x1", self.expand_1x1),
            ("expand/3x3", self.expand_3x3),
        ]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.squeeze_conv.build(input_shape)
        squeezed = self.squeeze_conv.compute_output_shape(input_shape)
        self.expand_1x1.build(squeezed)
        self.expand_3x3.build(squeezed)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.squeeze_conv(inputs, training=training)
        return keras.ops.concatenate(
            [self.expand_1x1(x, training=training), self.expand_3x3(x, training=training)], -1
        )

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 2 * self.expand)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(squeeze=self.squeeze, expand=self.expand, weight_decay=self.weight_decay)
        return config


def squeezenet(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **_: Any,
) -> keras.Model:
    """Build SqueezeNet from standardised images to the pre-normalisation embedding.

    conv1 7x7/2 (96), max-pool, fire2-4, max-pool, fire5-8, max-pool, fire9, dropout, conv10
    1x1 (1000, bias, no batch norm), global average pool, Bottleneck dense + batch norm.
    As in the original, the dropout sits before conv10 (not before the bottleneck).

    Args:
        image_size: side of the square input.
        embedding_size: size of the bottleneck (the embedding).
        keep_probability: dropout keep probability before conv10.
        weight_decay: L2 weight decay on every kernel.

    Returns:
        A ``keras.Model`` named ``squeezenet``.
    """
    wd = weight_decay
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = ConvBN(96, 7, strides=2, weight_decay=wd, name="conv1")(inputs)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool1")(x)
    x = Fire(16, 64, wd, name="fire2")(x)
    x = Fire(16, 64, wd, name="fire3")(x)
    x = Fire(32, 128, wd, name="fire4")(x)
    x = layers.MaxPooling2D(2, strides=2, name="maxpool4")(x)
    x = Fire(32, 128, wd, name="fire5")(x)
    x = Fire(48, 192, wd, name="fire6")(x)
    x = Fire(48, 192, wd, name="fire7")(x)
    x = Fire(64, 256, wd, name="fire8")(x)
    x = layers.MaxPooling2D(3, strides=2, name="maxpool8")(x)
    x = Fire(64, 256, wd, name="fire9")(x)
    x = layers.Dropout(1.0 - keep_probability, name="Dropout")(x)
    x = layers.Conv2D(
        1000, 1, use_bias=True, kernel_initializer="glorot_uniform",
        kernel_regularizer=l2_regularizer(wd), name="conv10",
    )(x)  # fmt: skip
    x = layers.GlobalAveragePooling2D(name="avgpool10")(x)
    x = layers.Dense(
        embedding_size, use_bias=False, kernel_initializer="glorot_uniform",
        kernel_regularizer=l2_regularizer(wd), name="Bottleneck",
    )(x)  # fmt: skip
    outputs = batch_norm("Bottleneck_BatchNorm")(x)
    return keras.Model(inputs, outputs, name="squeezenet")
