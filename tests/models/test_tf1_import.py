"""Import of the original's TF1 checkpoints: names from TF1's own scoping, parity of embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facenet_cli.errors import InputError
from facenet_cli.models import create_model
from facenet_cli.models.loading import is_tf1_checkpoint, load_embedding_model
from facenet_cli.models.sidecar import ModelInfo, write_model_info
from facenet_cli.models.tf1_import import (
    detect_architecture,
    import_tf1_checkpoint,
    load_tf1_weights,
    tf1_variable_map,
)
from tests.models import tf1_reference

SIZE = 80  # small enough to be quick, large enough for every valid convolution


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.normal(0.0, 1.0, (3, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def v1_checkpoint(tmp_path_factory: pytest.TempPathFactory, images: np.ndarray):
    prefix = tmp_path_factory.mktemp("tf1_v1") / "model-20180402-114759.ckpt-275"
    prelogits, names = tf1_reference.write_tf1_checkpoint(
        "inception_resnet_v1", images, prefix, bottleneck_size=64
    )
    return prefix, prelogits, names


def test_tf1_reference_checkpoint_uses_the_original_names(v1_checkpoint) -> None:
    prefix, _, names = v1_checkpoint
    assert is_tf1_checkpoint(prefix)
    for name in (
        "InceptionResnetV1/Repeat/block35_1/Branch_1/Conv2d_0b_3x3/weights",
        "InceptionResnetV1/Repeat_1/block17_10/Branch_1/Conv2d_0c_7x1/BatchNorm/moving_mean",
        "InceptionResnetV1/Repeat_2/block8_5/Conv2d_1x1/biases",
        "InceptionResnetV1/Block8/Branch_1/Conv2d_0b_1x3/BatchNorm/beta",
        "InceptionResnetV1/Mixed_7a/Branch_2/Conv2d_1a_3x3/BatchNorm/moving_variance",
        "InceptionResnetV1/Bottleneck/weights",
        "InceptionResnetV1/Bottleneck/BatchNorm/beta",
    ):
        assert name in names
    model = create_model("inception_resnet_v1", embedding_size=64, image_size=SIZE)
    assert set(tf1_variable_map(model)) == set(names)


def test_imported_inception_resnet_v1_reproduces_the_tf1_embeddings(v1_checkpoint, images) -> None:
    prefix, expected, _ = v1_checkpoint
    assert detect_architecture(prefix) == ("inception_resnet_v1", 64)
    model, info = import_tf1_checkpoint(prefix, image_size=SIZE)
    assert info == ModelInfo("inception_resnet_v1", 64, SIZE, "fixed")
    got = np.asarray(model(images, training=False))
    assert np.abs(expected).max() > 0.1  # a non-trivial output, so the comparison means something
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    # The raw-pixel path through the loader gives the normalised version of the same thing.
    write_model_info(prefix.parent, ModelInfo("inception_resnet_v1", 64, SIZE, "none"))
    loaded = load_embedding_model(prefix.parent)
    assert loaded.kind == "tf1_checkpoint"
    pixels = np.clip(images * 40 + 128, 0, 255).astype(np.float32)
    prelogits = np.asarray(model(pixels, training=False), np.float64)
    reference = prelogits / np.linalg.norm(prelogits, axis=1, keepdims=True)
    np.testing.assert_allclose(loaded.embed(pixels), reference, atol=1e-5)


def test_imported_squeezenet_reproduces_the_tf1_embeddings(tmp_path: Path, images) -> None:
    prefix = tmp_path / "squeeze.ckpt-1"
    expected, _ = tf1_reference.write_tf1_checkpoint("squeezenet", images, prefix)
    model, info = import_tf1_checkpoint(prefix, image_size=SIZE, standardization="per_image")
    assert (info.model_def, info.embedding_size, info.standardization) == (
        "squeezenet", 128, "per_image",
    )  # fmt: skip
    got = np.asarray(model(images, training=False))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())


def test_import_names_missing_variables_and_wrong_shapes(v1_checkpoint) -> None:
    prefix, _, _ = v1_checkpoint
    wrong_size = create_model("inception_resnet_v1", embedding_size=32, image_size=SIZE)
    with pytest.raises(InputError, match="Bottleneck/weights has shape"):
        load_tf1_weights(wrong_size, prefix)
    with pytest.raises(InputError, match="sidecar says"):
        import_tf1_checkpoint(prefix, ModelInfo("inception_resnet_v1", 128, SIZE, "fixed"))


def test_non_facenet_checkpoint_is_refused(tmp_path: Path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.get_variable("other/weights", [2, 2])
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(tmp_path / "other.ckpt-1"), write_meta_graph=False)
    with pytest.raises(InputError, match="not an original FaceNet checkpoint"):
        load_embedding_model(tmp_path / "other.ckpt-1")


def test_load_pretrained_takes_a_tf1_checkpoint_folder(v1_checkpoint, images) -> None:
    from facenet_cli.models.loading import load_pretrained

    prefix, expected, _ = v1_checkpoint
    model = create_model("inception_resnet_v1", embedding_size=64, image_size=SIZE)
    (prefix.parent / "model.json").unlink(missing_ok=True)
    assert load_pretrained(model, prefix.parent).startswith("TF1 checkpoint")
    np.testing.assert_allclose(np.asarray(model(images, training=False)), expected, atol=1e-5)
