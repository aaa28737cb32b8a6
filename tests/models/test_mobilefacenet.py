"""MobileFaceNet: the paper's size, shapes at 112 and other sizes, finiteness, config round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from facenet_cli.models import create_model, model_names


def _count(weights) -> int:
    return sum(int(np.prod(v.shape)) for v in weights)


@pytest.fixture(scope="module")
def mfn_112():
    return create_model("mobilefacenet", embedding_size=128, image_size=112)


def test_mobilefacenet_is_registered_with_the_papers_size(mfn_112) -> None:
    assert "mobilefacenet" in model_names()
    # The paper: 0.99 M parameters with a 128-d embedding (ours counts PReLU slopes and BN betas).
    assert _count(mfn_112.trainable_weights) == 1_003_136
    assert _count(mfn_112.non_trainable_weights) == 19_584  # batch-norm moving statistics
    gdconv = mfn_112.get_layer("gdconv_dw")
    assert gdconv.kernel_size == (7, 7)  # a 112 px input leaves a 7 x 7 grid


def test_mobilefacenet_forward_is_finite_and_distinct(mfn_112) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.normal(0.0, 1.0, (2, 112, 112, 3)).astype(np.float32)
    out = np.asarray(mfn_112(pixels, training=False))
    assert out.shape == (2, 128) and np.all(np.isfinite(out))
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("size", [32, 96])
def test_mobilefacenet_takes_other_sizes(size: int) -> None:
    model = create_model("mobilefacenet", embedding_size=16, image_size=size, weight_decay=1e-4)
    out = np.asarray(model(np.zeros((1, size, size, 3), np.float32), training=True))
    assert out.shape == (1, 16) and np.all(np.isfinite(out))
    assert model.losses  # every kernel carries the weight decay


def test_mobilefacenet_config_round_trip() -> None:
    model = create_model("mobilefacenet", embedding_size=8, image_size=32)
    again = keras.Model.from_config(model.get_config())
    again.set_weights(model.get_weights())
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-5)
