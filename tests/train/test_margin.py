"""Classifier heads and center loss against NumPy transcriptions of the published formulas."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from facenet_cli.errors import InputError
from facenet_cli.train.center_loss import CenterLoss
from facenet_cli.train.heads import create_head
from facenet_cli.train.heads.arcface import ArcFaceHead, arcface_logits
from facenet_cli.train.heads.cosface import cosface_logits
from facenet_cli.train.objectives.classification import classifier_accuracy, prelogits_norm
from facenet_cli.train.registry import HEADS, loss_names


def np_cosine(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    w = w / np.linalg.norm(w, axis=0, keepdims=True)
    return x @ w


def np_arcface(cos: np.ndarray, y: np.ndarray, s: float, m: float, easy: bool) -> np.ndarray:
    out = cos.copy()
    for i, c in enumerate(y):
        t = cos[i, c]
        theta = math.acos(min(max(t, -1.0), 1.0))
        if easy:
            phi = math.cos(theta + m) if t > 0 else t
        else:
            phi = math.cos(theta + m) if theta + m < math.pi else t - m * math.sin(m)
        out[i, c] = phi
    return s * out


@pytest.fixture(scope="module")
def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 5)).astype(np.float32), np.array([0, 3, 2, 3, 1, 0, 2])


def test_cosface_subtracts_the_margin_from_the_true_class_only(batch) -> None:
    x, y = batch
    rng = np.random.default_rng(1)
    w = rng.normal(size=(5, 4)).astype(np.float32)
    head = create_head("cosface", 4)
    head.build((None, 5))
    head.kernel.assign(w)
    logits = np.asarray(head(tf.constant(x), tf.constant(y)))
    expected = 64.0 * (np_cosine(x, w) - 0.35 * np.eye(4)[y])
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-4)
    assert head.scale == 64.0 and head.margin == 0.35


@pytest.mark.parametrize("easy", [False, True])
def test_arcface_adds_the_angle_margin_with_the_published_fallback(easy: bool) -> None:
    # Cosines across the whole range, so both branches (and easy_margin's) are exercised.
    cos = np.linspace(-0.999, 0.999, 24, dtype=np.float32).reshape(6, 4)
    y = np.array([0, 1, 2, 3, 0, 1])
    logits = np.asarray(arcface_logits(tf.constant(cos), tf.constant(y), 64.0, 0.5, easy))
    np.testing.assert_allclose(logits, np_arcface(cos, y, 64.0, 0.5, easy), atol=2e-3)


def test_arcface_true_logit_never_rises_as_the_angle_grows() -> None:
    cos = np.linspace(1.0, -1.0, 401, dtype=np.float32)[:, None]
    logits = np.asarray(arcface_logits(tf.constant(cos), tf.zeros(401, tf.int32), 1.0, 0.5))
    assert np.all(np.diff(logits[:, 0]) <= 1e-6)


def test_cosface_helper_matches_its_formula() -> None:
    cos = np.array([[0.5, -0.2], [0.1, 0.9]], np.float32)
    logits = np.asarray(cosface_logits(tf.constant(cos), tf.constant([1, 1]), 30.0, 0.4))
    np.testing.assert_allclose(logits, [[15.0, -18.0], [3.0, 15.0]], atol=1e-5)


def test_softmax_head_is_a_dense_layer_with_bias_on_raw_prelogits(batch) -> None:
    x, y = batch
    head = create_head("softmax", 4, weight_decay=1e-3)
    head.build((None, 5))
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 4)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    head.kernel.assign(w)
    head.bias.assign(b)
    np.testing.assert_allclose(np.asarray(head(tf.constant(x))), x @ w + b, rtol=1e-5, atol=1e-5)
    # slim's L2: weight_decay * sum(w^2) / 2 on the kernel.
    np.testing.assert_allclose(float(head.losses[0]), 1e-3 * np.sum(w**2) / 2, rtol=1e-5)


def test_head_config_round_trip() -> None:
    head = create_head("arcface", 9, scale=32.0, margin=0.4, easy_margin=True)
    again = ArcFaceHead.from_config(head.get_config())
    assert (again.nrof_classes, again.scale, again.margin, again.easy_margin) == (
        9, 32.0, 0.4, True,
    )  # fmt: skip


def test_an_unknown_head_is_an_error_listing_the_heads() -> None:
    with pytest.raises(
        InputError, match="unknown head 'sphereface': choose softmax, arcface, cosface"
    ):
        create_head("sphereface", 3)
    # Every head is a --loss, each registered once.
    assert loss_names() == ("triplet", *HEADS)
    for name in HEADS:
        head = create_head(name, 3)
        head.build((None, 4))
        assert head.name == "Logits" and head.kernel.shape == (4, 3)


def test_accuracy_and_prelogits_norm() -> None:
    logits = tf.constant([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0]])
    acc = float(classifier_accuracy(logits, tf.constant([0, 1, 1])))
    assert acc == pytest.approx(2 / 3)
    pre = np.array([[3.0, -4.0], [1.0, 0.0]], np.float32)
    l2 = np.mean(np.linalg.norm(np.abs(pre) + 1e-4, axis=1))
    l1 = np.mean(np.sum(np.abs(pre) + 1e-4, axis=1))
    np.testing.assert_allclose(float(prelogits_norm(tf.constant(pre), 2.0)), l2, rtol=1e-6)
    np.testing.assert_allclose(float(prelogits_norm(tf.constant(pre), 1.0)), l1, rtol=1e-6)


def np_center_step(centers: np.ndarray, x: np.ndarray, y: np.ndarray, alfa: float):
    """The original: loss against the old centers, then ``scatter_sub`` once per sample."""
    batch_centers = centers[y]
    loss = np.mean((x - batch_centers) ** 2)
    new = centers.copy()
    np.subtract.at(new, y, (1 - alfa) * (batch_centers - x))
    return loss, new


def test_center_loss_matches_the_original_update(batch) -> None:
    x, y = batch
    layer = CenterLoss(4, alfa=0.9)
    layer.build((None, 5))
    centers = np.zeros((4, 5), np.float32)
    for _ in range(3):  # repeated classes in the batch move their center once per sample
        loss = float(layer(tf.constant(x), tf.constant(y)))
        expected, centers = np_center_step(centers, x, y, 0.9)
        assert loss == pytest.approx(expected, rel=1e-5)
        np.testing.assert_allclose(np.asarray(layer.centers), centers, rtol=1e-5, atol=1e-6)
        x = x + 0.5


def test_center_loss_gradient_pulls_features_to_the_centers() -> None:
    layer = CenterLoss(2, alfa=0.5)
    layer.build((None, 3))
    layer.centers.assign(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32))
    x = tf.Variable([[0.0, 0.0, 0.0]])
    with tf.GradientTape() as tape:
        loss = layer(x, tf.constant([0]))
    grad = np.asarray(tape.gradient(loss, x))
    np.testing.assert_allclose(grad, [[-2.0 / 3, 0.0, 0.0]], rtol=1e-5)
    assert not layer.trainable_weights and isinstance(layer.centers, keras.Variable)
