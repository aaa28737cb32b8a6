"""Export: SavedModel (used without this package) + .keras + sidecar, with parity checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.errors import InputError
from facenet_cli.models import create_model
from facenet_cli.models.export import ParityError, check_parity, export_model, sample_images
from facenet_cli.models.loading import embedding_fn, load_embedding_model
from facenet_cli.models.sidecar import ModelInfo, read_model_info
from tests.models.runs import write_run

INFO = ModelInfo("small", 32, 40, "fixed")

# Runs in a fresh interpreter that must never import facenet_cli (nor Keras custom layers).
STANDALONE = """
import sys
import numpy as np
import tensorflow as tf
export_dir, pixels_path, out_path = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
pixels = np.load(pixels_path, allow_pickle=False)
serving = loaded.signatures["serving_default"]
uint8 = loaded.signatures["serve_uint8"]
as_float = serving(images=tf.constant(pixels))["embeddings"].numpy()
as_uint8 = uint8(images=tf.constant(pixels.astype(np.uint8)))["embeddings"].numpy()
called = loaded.serve(tf.constant(pixels))["embeddings"].numpy()
assert not [m for m in sys.modules if m.startswith("facenet_cli")], "facenet_cli was imported"
np.savez(out_path, as_float=as_float, as_uint8=as_uint8, called=called)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    model = create_model("small", **INFO.build_kwargs())
    out = export_model(model, INFO, tmp_path_factory.mktemp("exp") / "export")
    return model, out


def test_export_layout_and_sidecars(exported) -> None:
    _, out = exported
    assert (out / "saved_model" / "saved_model.pb").exists()
    assert (out / "model.keras").exists()
    assert read_model_info(out) == INFO == read_model_info(out / "saved_model")
    sidecar = json.loads((out / "model.json").read_text())
    assert {"image_size", "standardization", "color_order", "embedding_size"} <= set(sidecar)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".export")]  # no staging


def test_saved_model_runs_without_this_package(exported, tmp_path: Path) -> None:
    model, out = exported
    pixels = sample_images(INFO, n=6, seed=3)
    np.save(tmp_path / "pixels.npy", pixels)
    result = subprocess.run(
        [sys.executable, "-c", STANDALONE, str(out / "saved_model"),
         str(tmp_path / "pixels.npy"), str(tmp_path / "out.npz")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    got = np.load(tmp_path / "out.npz", allow_pickle=False)
    expected = embedding_fn(model, INFO)(pixels)
    for key in ("as_float", "as_uint8", "called"):
        assert got[key].shape == (6, 32)
        np.testing.assert_allclose(got[key], expected, rtol=0, atol=1e-5)


def test_exported_folder_and_keras_file_load_back(exported) -> None:
    model, out = exported
    pixels = sample_images(INFO, n=4, seed=1)
    expected = embedding_fn(model, INFO)(pixels)
    for source, kind in ((out, "keras"), (out / "model.keras", "keras"),
                         (out / "saved_model", "saved_model")):  # fmt: skip
        loaded = load_embedding_model(source)
        assert loaded.kind == kind and loaded.info == INFO
        np.testing.assert_allclose(loaded.embed(pixels), expected, rtol=0, atol=1e-5)


def test_parity_check_catches_a_different_model(exported) -> None:
    model, out = exported
    assert max(check_parity(model, INFO, out).values()) <= 1e-5
    other = create_model("small", **INFO.build_kwargs())
    with pytest.raises(ParityError, match="differs from the in-memory model"):
        check_parity(other, INFO, out)


def test_export_refuses_to_overwrite_something_else(tmp_path: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    model = create_model("small", **INFO.build_kwargs())
    with pytest.raises(InputError, match="not an export folder"):
        export_model(model, INFO, tmp_path / "precious", check=False)
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_cli_export_from_a_run_directory(tmp_path: Path) -> None:
    _, ema = write_run(tmp_path / "run", steps=(7,))
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "parity" in result.output
    loaded = load_embedding_model(tmp_path / "out" / "saved_model")
    pixels = sample_images(loaded.info, n=3)
    np.testing.assert_allclose(
        loaded.embed(pixels), embedding_fn(ema, loaded.info)(pixels), rtol=0, atol=1e-5
    )
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), str(tmp_path / "o2")])
    assert missing.exit_code == 3 and "no such model" in missing.output


def test_flip_fusion_is_part_of_the_model_everywhere(tmp_path: Path) -> None:
    import dataclasses

    fused = dataclasses.replace(INFO, flip_fusion=True)
    model = create_model("small", **INFO.build_kwargs())
    pixels = sample_images(INFO, n=4, seed=2)
    mirrored = pixels[:, :, ::-1, :]
    plain = embedding_fn(model, INFO)
    both = embedding_fn(model, fused)
    # The fused embedding is the normalised sum of the plain embeddings of face and mirror.
    expected = plain(pixels) + plain(mirrored)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(both(pixels), expected, atol=1e-5)
    assert np.abs(plain(pixels) - plain(mirrored)).max() > 1e-3
    out = export_model(model, fused, tmp_path / "export")
    assert json.loads((out / "model.json").read_text())["flip_fusion"] is True
    for source in (out, out / "saved_model"):  # the SavedModel carries it in its graph
        loaded = load_embedding_model(source)
        assert loaded.info.flip_fusion
        np.testing.assert_allclose(loaded.embed(mirrored), expected, atol=1e-5)
