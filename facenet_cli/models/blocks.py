"""Keras layers of the Inception-ResNet family, named after the paper and the original code.

Conventions shared with the original (TF1-slim) FaceNet models:

* every convolution that is followed by batch norm has no bias; batch norm has a shift (beta)
  and no scale (gamma), momentum 0.995, epsilon 0.001;
* the 1x1 "up" convolution that closes each residual block has a bias and no batch norm;
* kernels are Glorot-uniform initialised and carry an L2 penalty of
  ``weight_decay * sum(w ** 2) / 2`` (slim's ``l2_regularizer``, which uses ``tf.nn.l2_loss``).

Each composite layer lists its convolutions with the TF1 variable scope they had in the
original (``tf1_units``) so that released TF1 checkpoints can be imported by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import layers

BN_MOMENTUM = 0.995
BN_EPSILON = 1e-3


def l2_regularizer(weight_decay: float) -> keras.regularizers.Regularizer | None:
    """slim's ``l2_regularizer(weight_decay)``: ``weight_decay * sum(w ** 2) / 2``; None when 0."""
    return keras.regularizers.L2(weight_decay / 2.0) if weight_decay > 0 else None


def batch_norm(name: str) -> layers.BatchNormalization:
    """Batch norm as the original configures it: beta, no gamma, decay 0.995, epsilon 0.001."""
    return layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, scale=False, center=True, name=name
    )


def _channels(shape: tuple[int | None, ...]) -> int:
    channels = shape[-1]
    if channels is None:
        raise ValueError("the channel dimension must be known")
    return int(channels)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


@keras.saving.register_keras_serializable(package="facenet")
class ConvBN(layers.Layer):
    """Convolution (no bias) + batch norm (beta only) + optional ReLU: slim's ``conv2d``.

    Args:
        filters: output channels.
        kernel_size: an int or ``(height, width)``.
        strides: convolution stride.
        padding: ``"same"`` or ``"valid"``.
        activation: apply ReLU after batch norm.
        weight_decay: L2 weight decay on the kernel (slim convention, see module docstring).
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int = 1,
        padding: str = "same",
        activation: bool = True,
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = _pair(kernel_size)
        self.strides = int(strides)
        self.padding = padding
        self.activation = bool(activation)
        self.weight_decay = float(weight_decay)
        self.conv = layers.Conv2D(
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding=padding,
            use_bias=False,
            kernel_initializer="glorot_uniform",
            kernel_regularizer=l2_regularizer(self.weight_decay),
            name="conv",
        )
        self.bn = batch_norm("bn")

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self.conv.build(input_shape)
        self.bn.build(self.conv.compute_output_shape(input_shape))
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.bn(self.conv(inputs), training=training)
        return keras.ops.relu(x) if self.activation else x

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return self.conv.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=list(self.kernel_size),
            strides=self.strides,
            padding=self.padding,
            activation=self.activation,
            weight_decay=self.weight_decay,
        )
        return config


class _Composite(layers.Layer):
    """Base of the multi-branch blocks: builds its towers in order and lists TF1 scopes."""

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        raise NotImplementedError

    def tf1_units(self) -> list[tuple[str, layers.Layer]]:
        """``(relative TF1 scope, layer)`` for every convolution of the block."""
        return [unit for tower in self._towers() for unit in tower]

    def _build_towers(self, input_shape: tuple[int | None, ...]) -> list[tuple[int | None, ...]]:
        shapes = []
        for tower in self._towers():
            shape = input_shape
            for _, layer in tower:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        return shapes

    def _run_towers(self, inputs: Any, training: bool | None) -> list[Any]:
        outputs = []
        for tower in self._towers():
            x = inputs
            for _, layer in tower:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs


class _ResidualBlock(_Composite):
    """``x + scale * up(concat(towers(x)))`` then optional ReLU (Inception-ResNet-A/B/C)."""

    def __init__(
        self, scale: float = 1.0, activation: bool = True, weight_decay: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.activation = bool(activation)
        self.weight_decay = float(weight_decay)
        self.up: layers.Conv2D | None = None

    def _conv(self, filters: int, kernel: int | Sequence[int], name: str) -> ConvBN:
        return ConvBN(filters, kernel, weight_decay=self.weight_decay, name=name)

    def tf1_units(self) -> list[tuple[str, layers.Layer]]:
        assert self.up is not None, "build the block first"
        return [*super().tf1_units(), ("Conv2d_1x1", self.up)]

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        channels = _channels(input_shape)
        shapes = self._build_towers(input_shape)
        # The "up" projection back to the block's width has a bias and no batch norm.
        self.up = layers.Conv2D(
            channels,
            1,
            use_bias=True,
            kernel_initializer="glorot_uniform",
            kernel_regularizer=l2_regularizer(self.weight_decay),
            name="up",
        )
        mixed = sum(_channels(s) for s in shapes)
        self.up.build((*input_shape[:-1], mixed))
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        mixed = keras.ops.concatenate(self._run_towers(inputs, training), axis=-1)
        x = inputs + self.scale * self.up(mixed)  # type: ignore[misc]
        return keras.ops.relu(x) if self.activation else x

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(scale=self.scale, activation=self.activation, weight_decay=self.weight_decay)
        return config


@keras.saving.register_keras_serializable(package="facenet")
class Block35(_ResidualBlock):
    """Inception-ResNet-A (35 x 35 grid in the paper): 1x1 | 1x1-3x3 | 1x1-3x3-3x3.

    Args:
        scale: residual scaling (0.17 in both Inception-ResNet models).
        activation: ReLU after the residual sum.
        branch_0: filters of the 1x1 tower.
        branch_1: filters of the 1x1-3x3 tower.
        branch_2: filters of the 1x1-3x3-3x3 tower.
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    def __init__(
        self,
        scale: float = 0.17,
        activation: bool = True,
        branch_0: int = 32,
        branch_1: Sequence[int] = (32, 32),
        branch_2: Sequence[int] = (32, 32, 32),
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(scale=scale, activation=activation, weight_decay=weight_decay, **kwargs)
        self.branch_0 = int(branch_0)
        self.branch_1 = [int(f) for f in branch_1]
        self.branch_2 = [int(f) for f in branch_2]
        self.tower_0 = [self._conv(self.branch_0, 1, "Branch_0_Conv2d_1x1")]
        self.tower_1 = [
            self._conv(self.branch_1[0], 1, "Branch_1_Conv2d_0a_1x1"),
            self._conv(self.branch_1[1], 3, "Branch_1_Conv2d_0b_3x3"),
        ]
        self.tower_2 = [
            self._conv(self.branch_2[0], 1, "Branch_2_Conv2d_0a_1x1"),
            self._conv(self.branch_2[1], 3, "Branch_2_Conv2d_0b_3x3"),
            self._conv(self.branch_2[2], 3, "Branch_2_Conv2d_0c_3x3"),
        ]

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        return [
            [("Branch_0/Conv2d_1x1", self.tower_0[0])],
            list(
                zip(["Branch_1/Conv2d_0a_1x1", "Branch_1/Conv2d_0b_3x3"], self.tower_1, strict=True)
            ),
            list(
                zip(
                    ["Branch_2/Conv2d_0a_1x1", "Branch_2/Conv2d_0b_3x3", "Branch_2/Conv2d_0c_3x3"],
                    self.tower_2,
                    strict=True,
                )
            ),
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(branch_0=self.branch_0, branch_1=self.branch_1, branch_2=self.branch_2)
        return config


class _FactorisedBlock(_ResidualBlock):
    """Inception-ResNet-B/C: a 1x1 tower and a 1x1 -> 1xk -> kx1 tower."""

    KERNEL = 7

    def __init__(
        self,
        scale: float,
        activation: bool,
        branch_0: int,
        branch_1: Sequence[int],
        weight_decay: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(scale=scale, activation=activation, weight_decay=weight_decay, **kwargs)
        self.branch_0 = int(branch_0)
        self.branch_1 = [int(f) for f in branch_1]
        k = self.KERNEL
        self._names = [
            "Branch_1/Conv2d_0a_1x1",
            f"Branch_1/Conv2d_0b_1x{k}",
            f"Branch_1/Conv2d_0c_{k}x1",
        ]
        self.tower_0 = [self._conv(self.branch_0, 1, "Branch_0_Conv2d_1x1")]
        self.tower_1 = [
            self._conv(self.branch_1[0], 1, "Branch_1_Conv2d_0a_1x1"),
            self._conv(self.branch_1[1], (1, k), f"Branch_1_Conv2d_0b_1x{k}"),
            self._conv(self.branch_1[2], (k, 1), f"Branch_1_Conv2d_0c_{k}x1"),
        ]

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        return [
            [("Branch_0/Conv2d_1x1", self.tower_0[0])],
            list(zip(self._names, self.tower_1, strict=True)),
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(branch_0=self.branch_0, branch_1=self.branch_1)
        return config


@keras.saving.register_keras_serializable(package="facenet")
class Block17(_FactorisedBlock):
    """Inception-ResNet-B (17 x 17 grid in the paper): 1x1 | 1x1-1x7-7x1.

    Args:
        scale: residual scaling (0.10 in both Inception-ResNet models).
        activation: ReLU after the residual sum.
        branch_0: filters of the 1x1 tower.
        branch_1: filters of the 1x1-1x7-7x1 tower.
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    KERNEL = 7

    def __init__(
        self,
        scale: float = 0.10,
        activation: bool = True,
        branch_0: int = 128,
        branch_1: Sequence[int] = (128, 128, 128),
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(scale, activation, branch_0, branch_1, weight_decay, **kwargs)


@keras.saving.register_keras_serializable(package="facenet")
class Block8(_FactorisedBlock):
    """Inception-ResNet-C (8 x 8 grid in the paper): 1x1 | 1x1-1x3-3x1.

    Args:
        scale: residual scaling (0.20; 1.0 for the last block, which has no activation).
        activation: ReLU after the residual sum.
        branch_0: filters of the 1x1 tower.
        branch_1: filters of the 1x1-1x3-3x1 tower.
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    KERNEL = 3

    def __init__(
        self,
        scale: float = 0.20,
        activation: bool = True,
        branch_0: int = 192,
        branch_1: Sequence[int] = (192, 192, 192),
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(scale, activation, branch_0, branch_1, weight_decay, **kwargs)


class _Concat(_Composite):
    """A block whose towers (plus an optional pooling tower) are concatenated."""

    def __init__(self, weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.weight_decay = float(weight_decay)

    def _conv(self, filters: int, kernel: int, name: str, strides: int = 1) -> ConvBN:
        padding = "valid" if strides == 2 else "same"
        return ConvBN(
            filters, kernel, strides=strides, padding=padding,
            weight_decay=self.weight_decay, name=name,
        )  # fmt: skip

    def _pool(self, inputs: Any) -> Any:
        return keras.ops.max_pool(inputs, pool_size=3, strides=2, padding="valid")

    def _pool_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        def out(n: int | None) -> int | None:
            return None if n is None else (n - 3) // 2 + 1

        return (input_shape[0], out(input_shape[1]), out(input_shape[2]), input_shape[3])

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        self._build_towers(input_shape)
        self.built = True

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        towers = self._run_towers(inputs, training)
        return keras.ops.concatenate([*towers, self._pool(inputs)], axis=-1)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        shapes = []
        for tower in self._towers():
            shape = input_shape
            for _, layer in tower:
                shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        pooled = self._pool_shape(input_shape)
        channels = sum(_channels(s) for s in shapes) + _channels(pooled)
        return (*pooled[:-1], channels)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(weight_decay=self.weight_decay)
        return config


@keras.saving.register_keras_serializable(package="facenet")
class ReductionA(_Concat):
    """Reduction-A (``Mixed_6a``): 3x3/2 | 1x1-3x3-3x3/2 | max-pool 3x3/2, concatenated.

    Args:
        k: filters of the tower's 1x1 convolution.
        l: filters of the tower's 3x3 convolution.
        m: filters of the tower's strided 3x3 convolution.
        n: filters of the single strided 3x3 convolution.
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    def __init__(
        self, k: int = 192, l: int = 192, m: int = 256, n: int = 384,  # noqa: E741
        weight_decay: float = 0.0, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(weight_decay=weight_decay, **kwargs)
        self.k, self.l, self.m, self.n = int(k), int(l), int(m), int(n)
        self.tower_0 = [self._conv(self.n, 3, "Branch_0_Conv2d_1a_3x3", strides=2)]
        self.tower_1 = [
            self._conv(self.k, 1, "Branch_1_Conv2d_0a_1x1"),
            self._conv(self.l, 3, "Branch_1_Conv2d_0b_3x3"),
            self._conv(self.m, 3, "Branch_1_Conv2d_1a_3x3", strides=2),
        ]

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        names = ["Branch_1/Conv2d_0a_1x1", "Branch_1/Conv2d_0b_3x3", "Branch_1/Conv2d_1a_3x3"]
        return [
            [("Branch_0/Conv2d_1a_3x3", self.tower_0[0])],
            list(zip(names, self.tower_1, strict=True)),
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(k=self.k, l=self.l, m=self.m, n=self.n)
        return config


@keras.saving.register_keras_serializable(package="facenet")
class ReductionB(_Concat):
    """Reduction-B (``Mixed_7a``): 1x1-3x3/2 | 1x1-3x3/2 | 1x1-3x3-3x3/2 | max-pool 3x3/2.

    Args:
        branch_0: filters of the 1x1 and strided 3x3 of the first tower.
        branch_1: filters of the 1x1 and strided 3x3 of the second tower.
        branch_2: filters of the 1x1, 3x3 and strided 3x3 of the third tower.
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    def __init__(
        self,
        branch_0: Sequence[int] = (256, 384),
        branch_1: Sequence[int] = (256, 256),
        branch_2: Sequence[int] = (256, 256, 256),
        weight_decay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(weight_decay=weight_decay, **kwargs)
        self.branch_0 = [int(f) for f in branch_0]
        self.branch_1 = [int(f) for f in branch_1]
        self.branch_2 = [int(f) for f in branch_2]
        self.tower_0 = [
            self._conv(self.branch_0[0], 1, "Branch_0_Conv2d_0a_1x1"),
            self._conv(self.branch_0[1], 3, "Branch_0_Conv2d_1a_3x3", strides=2),
        ]
        self.tower_1 = [
            self._conv(self.branch_1[0], 1, "Branch_1_Conv2d_0a_1x1"),
            self._conv(self.branch_1[1], 3, "Branch_1_Conv2d_1a_3x3", strides=2),
        ]
        self.tower_2 = [
            self._conv(self.branch_2[0], 1, "Branch_2_Conv2d_0a_1x1"),
            self._conv(self.branch_2[1], 3, "Branch_2_Conv2d_0b_3x3"),
            self._conv(self.branch_2[2], 3, "Branch_2_Conv2d_1a_3x3", strides=2),
        ]

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        n0 = ["Branch_0/Conv2d_0a_1x1", "Branch_0/Conv2d_1a_3x3"]
        n1 = ["Branch_1/Conv2d_0a_1x1", "Branch_1/Conv2d_1a_3x3"]
        n2 = ["Branch_2/Conv2d_0a_1x1", "Branch_2/Conv2d_0b_3x3", "Branch_2/Conv2d_1a_3x3"]
        return [
            list(zip(n0, self.tower_0, strict=True)),
            list(zip(n1, self.tower_1, strict=True)),
            list(zip(n2, self.tower_2, strict=True)),
        ]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(branch_0=self.branch_0, branch_1=self.branch_1, branch_2=self.branch_2)
        return config


@keras.saving.register_keras_serializable(package="facenet")
class Mixed5b(_Concat):
    """Inception-ResNet-v2's ``Mixed_5b``: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1.

    Args:
        weight_decay: L2 weight decay on kernels.
        **kwargs: standard layer arguments.
    """

    def __init__(self, weight_decay: float = 0.0, **kwargs: Any) -> None:
        super().__init__(weight_decay=weight_decay, **kwargs)
        self.tower_0 = [self._conv(96, 1, "Branch_0_Conv2d_1x1")]
        self.tower_1 = [
            self._conv(48, 1, "Branch_1_Conv2d_0a_1x1"),
            self._conv(64, 5, "Branch_1_Conv2d_0b_5x5"),
        ]
        self.tower_2 = [
            self._conv(64, 1, "Branch_2_Conv2d_0a_1x1"),
            self._conv(96, 3, "Branch_2_Conv2d_0b_3x3"),
            self._conv(96, 3, "Branch_2_Conv2d_0c_3x3"),
        ]
        self.tower_3 = [self._conv(64, 1, "Branch_3_Conv2d_0b_1x1")]

    def _towers(self) -> list[list[tuple[str, ConvBN]]]:
        n1 = ["Branch_1/Conv2d_0a_1x1", "Branch_1/Conv2d_0b_5x5"]
        n2 = ["Branch_2/Conv2d_0a_1x1", "Branch_2/Conv2d_0b_3x3", "Branch_2/Conv2d_0c_3x3"]
        return [
            [("Branch_0/Conv2d_1x1", self.tower_0[0])],
            list(zip(n1, self.tower_1, strict=True)),
            list(zip(n2, self.tower_2, strict=True)),
            [("Branch_3/Conv2d_0b_1x1", self.tower_3[0])],
        ]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        towers = self._run_towers(inputs, training)
        return keras.ops.concatenate(towers, axis=-1)

    def _run_towers(self, inputs: Any, training: bool | None) -> list[Any]:
        outputs = []
        for i, tower in enumerate(self._towers()):
            # The fourth tower starts with a 3x3/1 average pool (SAME, padding not counted).
            x = keras.ops.average_pool(inputs, 3, strides=1, padding="same") if i == 3 else inputs
            for _, layer in tower:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (*input_shape[:-1], 96 + 64 + 96 + 64)
