"""Keras layers of the models: get_config round trips and safe-mode .keras loading."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from facenet_cli.models.blocks import (
    Block8,
    Block17,
    Block35,
    ConvBN,
    Mixed5b,
    ReductionA,
    ReductionB,
)
from facenet_cli.models.squeezenet import Fire

# Narrow, non-default settings so that a constructor argument lost by get_config shows up.
LAYERS = [
    (ConvBN, dict(filters=8, kernel_size=(1, 3), strides=2, padding="valid", activation=False,
                  weight_decay=1e-4)),
    (Block35, dict(scale=0.3, activation=False, branch_0=4, branch_1=(4, 6),
                   branch_2=(4, 6, 8), weight_decay=1e-4)),
    (Block17, dict(scale=0.2, branch_0=4, branch_1=(4, 6, 8))),
    (Block8, dict(scale=1.0, activation=False, branch_0=4, branch_1=(6, 6, 4))),
    (ReductionA, dict(k=4, l=6, m=8, n=10)),
    (ReductionB, dict(branch_0=(4, 6), branch_1=(4, 5), branch_2=(4, 5, 6))),
    (Mixed5b, dict(weight_decay=1e-4)),
    (Fire, dict(squeeze=4, expand=6, weight_decay=1e-4)),
]  # fmt: skip
INPUT = (2, 9, 9, 12)


@pytest.mark.parametrize(("cls", "kwargs"), LAYERS, ids=[c.__name__ for c, _ in LAYERS])
def test_get_config_round_trip(cls, kwargs) -> None:
    layer = cls(name="probe", **kwargs)
    for key, value in kwargs.items():
        attr = getattr(layer, key)
        assert (list(attr) if isinstance(attr, tuple | list) else attr) == (
            list(value) if isinstance(value, tuple) else value
        )
    config = layer.get_config()
    clone = cls.from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer), safe_mode=True
    )
    assert type(revived) is cls and revived.get_config() == config

    x = np.random.default_rng(0).normal(0, 1, INPUT).astype(np.float32)
    y = np.asarray(layer(x, training=False))
    clone(x)  # build
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(np.asarray(clone(x, training=False)), y, atol=1e-6)
    assert tuple(layer.compute_output_shape(INPUT)) == y.shape


def test_blocks_keep_the_residual_shape() -> None:
    x = np.zeros(INPUT, np.float32)
    for cls in (Block35, Block17, Block8):
        assert np.asarray(cls(branch_0=4)(x)).shape == INPUT


def test_keras_file_with_every_block_loads_in_safe_mode(tmp_path: Path) -> None:
    inputs = keras.Input((17, 17, 12))
    x = inputs
    for cls, kwargs in LAYERS:
        x = cls(**kwargs)(x)
        if x.shape[-1] != 12:  # back to a fixed width so the next block fits
            x = ConvBN(12, 1)(x)
        if x.shape[1] < 5:
            x = keras.layers.UpSampling2D(4)(x)
    model = keras.Model(inputs, x)
    data = np.random.default_rng(1).normal(0, 1, (2, 17, 17, 12)).astype(np.float32)
    expected = np.asarray(model(data, training=False))
    path = tmp_path / "blocks.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(reloaded(data, training=False)), expected, atol=1e-6)
