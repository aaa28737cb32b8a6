"""load_embedding_model and embedding_fn over the run-directory checkpoint contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from facenet_cli.errors import InputError
from facenet_cli.models import create_model
from facenet_cli.models.loading import embedding_fn, load_embedding_model, newest_checkpoint
from facenet_cli.models.sidecar import ModelInfo, write_model_info
from tests.models.runs import INFO, perturbed, write_run


@pytest.fixture
def pixels() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (5, 40, 40, 3)).astype(np.float32)


def test_run_directory_loads_the_newest_checkpoint_ema_weights(tmp_path: Path, pixels) -> None:
    model, ema = write_run(tmp_path / "run")
    assert newest_checkpoint(tmp_path / "run") == tmp_path / "run" / "ckpt-200"
    loaded = load_embedding_model(tmp_path / "run")
    assert loaded.info == INFO and loaded.kind == "checkpoint"
    got = loaded.embed(pixels)
    assert got.shape == (5, 32)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, embedding_fn(ema, INFO)(pixels), atol=1e-6)
    assert np.abs(got - embedding_fn(model, INFO)(pixels)).max() > 1e-3


def test_checkpoint_prefix_and_model_without_ema(tmp_path: Path, pixels) -> None:
    model, _ = write_run(tmp_path / "run", with_ema=False)
    loaded = load_embedding_model(tmp_path / "run" / "ckpt-100")
    assert loaded.source == tmp_path / "run" / "ckpt-100"
    np.testing.assert_allclose(loaded.embed(pixels), embedding_fn(model, INFO)(pixels), atol=1e-6)


def test_embedding_fn_applies_the_sidecar_preprocessing(pixels) -> None:
    model = create_model("small", embedding_size=32, image_size=40)
    per_image = embedding_fn(model, INFO)(pixels)
    standardised = tf.image.per_image_standardization(pixels)
    manual = tf.math.l2_normalize(model(standardised, training=False), axis=1)
    np.testing.assert_allclose(per_image, manual.numpy(), atol=1e-5)
    fixed_info = ModelInfo("small", 32, 40, "fixed")
    manual_fixed = tf.math.l2_normalize(model((pixels - 127.5) / 128, training=False), axis=1)
    np.testing.assert_allclose(embedding_fn(model, fixed_info)(pixels), manual_fixed, atol=1e-5)
    bgr_info = ModelInfo("small", 32, 40, "per_image", color_order="BGR")
    np.testing.assert_allclose(
        embedding_fn(model, bgr_info)(pixels), per_image_of(model, pixels[..., ::-1]), atol=1e-5
    )
    # Inference mode: the batch composition does not change an image's embedding.
    np.testing.assert_allclose(embedding_fn(model, INFO)(pixels[:1]), per_image[:1], atol=1e-5)
    with pytest.raises(ValueError, match=r"\(N, 40, 40, 3\)"):
        embedding_fn(model, INFO)(pixels[:, :20])


def per_image_of(model, pixels):
    x = tf.image.per_image_standardization(np.ascontiguousarray(pixels))
    return tf.math.l2_normalize(model(x, training=False), axis=1).numpy()


def test_embedding_fn_follows_the_live_weights(pixels) -> None:
    model = create_model("small", embedding_size=32, image_size=40)
    embed = embedding_fn(model, INFO)
    before = embed(pixels)
    perturbed(model, 5)
    assert np.abs(embed(pixels) - before).max() > 1e-3


def test_loader_errors_are_one_line_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such model"):
        load_embedding_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no checkpoint, SavedModel"):
        load_embedding_model(tmp_path / "empty")
    write_run(tmp_path / "run", steps=(1,))
    (tmp_path / "run" / "model.json").unlink()
    with pytest.raises(InputError, match="model sidecar not found"):
        load_embedding_model(tmp_path / "run")
    write_model_info(tmp_path / "run", ModelInfo("squeezenet", 32, 40, "per_image"))
    with pytest.raises(InputError, match="does not match the architecture") as info:
        load_embedding_model(tmp_path / "run")
    assert "\n" not in str(info.value)


def test_load_pretrained_from_a_run_and_from_an_export(tmp_path: Path, pixels) -> None:
    from facenet_cli.models.export import export_model
    from facenet_cli.models.loading import load_pretrained

    _, ema = write_run(tmp_path / "run", steps=(3,))
    fresh = create_model(INFO.model_def, **INFO.build_kwargs())
    assert "ema_model" in load_pretrained(fresh, tmp_path / "run")
    expected = embedding_fn(ema, INFO)(pixels)
    np.testing.assert_allclose(embedding_fn(fresh, INFO)(pixels), expected, atol=1e-6)

    export_model(ema, INFO, tmp_path / "export", check=False)
    other = create_model(INFO.model_def, **INFO.build_kwargs())
    assert load_pretrained(other, tmp_path / "export").startswith("keras")
    np.testing.assert_allclose(embedding_fn(other, INFO)(pixels), expected, atol=1e-6)

    wrong = create_model("small", embedding_size=16, image_size=40)
    with pytest.raises(InputError, match="do not fit"):
        load_pretrained(wrong, tmp_path / "export")
    with pytest.raises(InputError, match="does not match"):
        load_pretrained(wrong, tmp_path / "run")
