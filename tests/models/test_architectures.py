"""Model builders: the original's parameter counts, shapes at 160 and small sizes, finiteness."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_cli.models import create_model


def trainable_count(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def non_trainable_count(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.non_trainable_weights)


@pytest.fixture(scope="module")
def v1_160():
    return create_model("inception_resnet_v1", embedding_size=128, image_size=160)


@pytest.fixture(scope="module")
def pixels():
    rng = np.random.default_rng(0)
    return rng.normal(0.0, 1.0, (2, 160, 160, 3)).astype(np.float32)


def test_inception_resnet_v1_parameter_counts_match_the_original(v1_160) -> None:
    assert trainable_count(v1_160) == 22_779_312
    assert non_trainable_count(v1_160) == 28_832  # batch-norm moving statistics
    # The counts do not depend on the input size, so D=512 is built small to save time.
    v1_512 = create_model("inception_resnet_v1", embedding_size=512, image_size=80)
    assert trainable_count(v1_512) == 23_467_824
    assert non_trainable_count(v1_512) == 29_600


def test_inception_resnet_v1_forward_at_160(v1_160, pixels) -> None:
    out = np.asarray(v1_160(pixels, training=False))
    assert out.shape == (2, 128)
    assert np.all(np.isfinite(out))
    assert not np.allclose(out[0], out[1])


def test_inception_resnet_v1_follows_the_original_conventions(v1_160) -> None:
    from keras import layers

    from facenet_cli.models.blocks import Block35, ConvBN

    names = [v.path for v in v1_160.weights]
    assert not any(n.endswith("gamma") for n in names)  # batch norm has beta only
    bns = [lay for lay in _all_layers(v1_160) if isinstance(lay, layers.BatchNormalization)]
    assert bns and all(
        bn.momentum == 0.995 and bn.epsilon == 1e-3 and not bn.scale and bn.center for bn in bns
    )
    convs = [lay for lay in _all_layers(v1_160) if isinstance(lay, ConvBN)]
    assert all(not c.conv.use_bias for c in convs)
    block = v1_160.get_layer("block35_1")
    assert isinstance(block, Block35) and block.scale == pytest.approx(0.17)
    assert block.up.use_bias
    assert v1_160.get_layer("block17_10").scale == pytest.approx(0.10)
    assert v1_160.get_layer("block8_5").scale == pytest.approx(0.20)
    assert v1_160.get_layer("Block8").activation is False
    assert v1_160.get_layer("AvgPool").output.shape[-1] == 1792


def _all_layers(model):
    return list(model._flatten_layers(include_self=False, recursive=True))


@pytest.mark.parametrize(
    ("name", "count", "small_size"),
    [("inception_resnet_v2", 54_472_928, 80), ("squeezenet", 1_376_552, 64)],
)
def test_other_originals_match_their_parameter_counts(name: str, count: int, small_size: int):
    model = create_model(name, embedding_size=128, image_size=small_size)
    assert trainable_count(model) == count
    x = np.random.default_rng(1).normal(0, 1, (2, small_size, small_size, 3)).astype(np.float32)
    out = np.asarray(model(x, training=False))
    assert out.shape == (2, 128) and np.all(np.isfinite(out))


def test_squeezenet_and_small_at_160(pixels) -> None:
    for name in ("squeezenet", "small"):
        out = np.asarray(create_model(name, embedding_size=64)(pixels, training=False))
        assert out.shape == (2, 64) and np.all(np.isfinite(out))


def test_inception_resnet_v2_at_160(pixels) -> None:
    model = create_model("inception_resnet_v2", embedding_size=128, image_size=160)
    out = np.asarray(model(pixels, training=False))
    assert out.shape == (2, 128) and np.all(np.isfinite(out))


@pytest.mark.parametrize("size", [32, 48, 96])
def test_small_model_takes_small_inputs(size: int) -> None:
    model = create_model("small", embedding_size=16, image_size=size)
    x = np.random.default_rng(2).normal(0, 1, (3, size, size, 3)).astype(np.float32)
    out = np.asarray(model(x, training=False))
    assert out.shape == (3, 16) and np.all(np.isfinite(out))


def test_small_model_has_capacity_and_stays_small() -> None:
    model = create_model("small")
    assert 500_000 < trainable_count(model) < 3_000_000


def test_weight_decay_is_slim_l2_on_every_kernel() -> None:
    model = create_model("small", image_size=32, weight_decay=1e-3)
    kernels = [v for v in model.trainable_weights if v.path.endswith("kernel")]
    assert len(model.losses) == len(kernels)
    expected = sum(1e-3 * float(np.sum(np.square(k.numpy()))) / 2 for k in kernels)
    assert float(sum(np.asarray(loss) for loss in model.losses)) == pytest.approx(expected, 1e-4)
    assert not create_model("small", image_size=32).losses


def test_dropout_follows_keep_probability() -> None:
    x = np.random.default_rng(4).normal(0, 1, (4, 32, 32, 3)).astype(np.float32)
    keep_all = create_model("small", image_size=32)
    np.testing.assert_allclose(
        np.asarray(keep_all(x, training=False)), np.asarray(keep_all(x, training=False))
    )
    half = create_model("small", image_size=32, keep_probability=0.5)
    assert half.get_layer("Dropout").rate == pytest.approx(0.5)
    assert not np.allclose(np.asarray(half(x, training=True)), np.asarray(half(x, training=True)))
