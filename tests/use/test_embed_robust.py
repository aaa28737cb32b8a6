"""``facenet embed`` on real-world folders: unreadable crops are skipped (every one in one run),
and an interrupted or killed run keeps the rows it finished, so the rerun continues.

Most tests use a stand-in model (a fixed function of the pixels) so they need no network
weights; the command-line test uses a tiny untrained Keras model.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.errors import InputError
from facenet_cli.models.loading import EmbeddingModel
from facenet_cli.models.sidecar import ModelInfo, write_model_info
from facenet_cli.use import embed_job as embed_module
from facenet_cli.use import face_embedding as embedding_module
from facenet_cli.use.embed_job import embed_folder
from facenet_cli.use.face_embedding import embed_images
from facenet_cli.use.store import read_embeddings

runner = CliRunner()
INFO = ModelInfo("small", 16, 40, "per_image", align_image_size=48, align_margin=8)


def _pixel_embed(images: np.ndarray) -> np.ndarray:
    """A stand-in model: block means of the pixels, normalised (one fixed row per image)."""
    x = np.asarray(images, np.float64).reshape(len(images), 16, -1).mean(axis=2) + 1.0
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _fake_model(tmp_path: Path, embed: Callable[[np.ndarray], np.ndarray] = _pixel_embed):
    return EmbeddingModel(info=INFO, source=tmp_path / "fake.keras", _embed=embed)


def _break(root: Path) -> dict[str, str]:
    """Add a zero-byte, a truncated and a text ``.png`` to a folder; rel -> expected reason."""
    (root / "a" / "a_empty.png").write_bytes(b"")
    good = (root / "b" / "b_0001.png").read_bytes()
    (root / "b" / "b_half.png").write_bytes(good[: len(good) // 2])
    (root / "c" / "c_text.png").write_text("not an image")
    return {
        "a/a_empty.png": "empty file (0 bytes)",
        "b/b_half.png": "truncated or corrupt image",
        "c/c_text.png": "not an image (unrecognised format)",
    }


def _json(output: str) -> dict:
    return json.loads(output[output.index("{") :])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``.keras`` file of an untrained ``small`` model with its ``model.json``."""
    import keras

    from facenet_cli.models.loading import build_model

    keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("model")
    build_model(INFO).save(folder / "model.keras")
    write_model_info(folder, INFO)
    return folder / "model.keras"


def test_embed_skips_every_unreadable_crop_in_one_run(
    model_file: Path, image_tree: Callable[..., Path], tmp_path: Path
) -> None:
    clean = image_tree({"a": 3, "b": 3, "c": 3}, size=48, name="clean")
    folder = tmp_path / "broken"
    shutil.copytree(clean, folder)
    expected = _break(folder)
    good = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*.png"))

    reference = tmp_path / "clean.npz"
    result = runner.invoke(app, ["embed", str(model_file), str(clean), "--out", str(reference)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "emb.npz"
    result = runner.invoke(
        app, ["embed", str(model_file), str(folder), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = _json(result.output)
    assert (summary["embedded"], summary["reused"], summary["images"]) == (9, 0, 9)
    assert sorted(summary["skipped"]) == sorted(expected)
    for rel, reason in expected.items():
        assert summary["skipped"][rel].startswith(reason)
        assert f"skipped: {rel}: {reason}" in result.output
    data, ref = read_embeddings(out), read_embeddings(reference)
    assert data.paths.tolist() == good == ref.paths.tolist()
    np.testing.assert_allclose(data.embeddings, ref.embeddings, atol=1e-6)
    assert sorted(data.meta["skipped"]) == sorted(expected)

    # A file embedded before and truncated since is not reused: it is skipped, its row dropped.
    changed = folder / "a" / "a_0002.png"
    changed.write_bytes(changed.read_bytes()[:300])
    result = runner.invoke(
        app, ["embed", str(model_file), str(folder), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = _json(result.output)
    assert (summary["reused"], summary["embedded"], summary["images"]) == (8, 0, 8)
    assert summary["skipped"]["a/a_0002.png"].startswith("truncated or corrupt image")
    assert "a/a_0002.png" not in read_embeddings(out).paths.tolist()

    # classify train embeds the same way and names the skipped files.
    clf = tmp_path / "clf.npz"
    result = runner.invoke(
        app, ["classify", "train", str(model_file), str(folder), "--out", str(clf), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert len(_json(result.output)["skipped"]) == 4
    assert f"{folder / 'c' / 'c_text.png'}: not an image" in result.output


def test_a_folder_without_bad_files_is_decoded_once(
    image_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = image_tree({"a": 5, "b": 4}, size=48)
    paths = sorted(folder.rglob("*.png"))

    def no_scan(paths: object) -> dict[int, str]:
        raise AssertionError("the files were checked one by one without a bad one")

    monkeypatch.setattr(embedding_module, "unreadable_images", no_scan)
    done: list[int] = []
    parts: list[embedding_module.Embedded] = []
    result = embed_images(
        _fake_model(tmp_path), paths, align=False, batch_size=4, on_done=done.append,
        on_rows=parts.append,
    )  # fmt: skip
    assert done == [4, 4, 1] and result.skipped == {}
    assert result.kept.tolist() == list(range(9))
    assert np.concatenate([p.kept for p in parts]).tolist() == list(range(9))
    np.testing.assert_array_equal(np.concatenate([p.embeddings for p in parts]), result.embeddings)


def test_bad_crops_are_skipped_with_flip_and_model_errors_still_raise(
    image_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = image_tree({"a": 3, "b": 3, "c": 3}, size=48)
    expected = _break(folder)
    paths = sorted(folder.rglob("*.png"))
    bad = {k for k, p in enumerate(paths) if p.relative_to(folder).as_posix() in expected}
    assert len(bad) == 3
    done: list[int] = []
    result = embed_images(
        _fake_model(tmp_path), paths, align=False, batch_size=2, flip=True, on_done=done.append
    )
    assert set(result.skipped) == bad and sum(done) == len(paths)
    assert result.kept.tolist() == [k for k in range(len(paths)) if k not in bad]
    good = [p for k, p in enumerate(paths) if k not in bad]
    again = embed_images(_fake_model(tmp_path), good, align=False, batch_size=2, flip=True)
    np.testing.assert_allclose(result.embeddings, again.embeddings, atol=1e-6)

    # A model fault is an error, whatever the images: no file is blamed or checked for it.
    def no_scan(paths: object) -> dict[int, str]:
        raise AssertionError("a model error was taken for a bad image")

    monkeypatch.setattr(embedding_module, "unreadable_images", no_scan)

    def nan(images: np.ndarray) -> np.ndarray:
        return np.full((len(images), 16), np.nan, np.float32)

    def short(images: np.ndarray) -> np.ndarray:
        return np.zeros((len(images) - 1, 16), np.float32)

    for model_fn, message in ((nan, "non-finite"), (short, "shape")):
        with pytest.raises(InputError, match=message):
            embed_images(_fake_model(tmp_path, model_fn), good, align=False, batch_size=2)


def test_an_interrupted_embed_keeps_its_finished_rows(
    image_tree: Callable[..., Path], tmp_path: Path
) -> None:
    folder = image_tree({"a": 4, "b": 4, "c": 4}, size=48)
    model = _fake_model(tmp_path)
    reference = embed_folder(model, folder, tmp_path / "ref.npz", batch_size=4)
    assert reference.nrof_embedded == 12
    ref = read_embeddings(tmp_path / "ref.npz")

    out = tmp_path / "emb.npz"

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_folder(model, folder, out, batch_size=4, on_done=interrupt)
    partial = read_embeddings(out)
    assert partial.paths.tolist() == ref.paths.tolist()[:4]
    np.testing.assert_array_equal(partial.embeddings, ref.embeddings[:4])
    assert partial.meta["settings"] == ref.meta["settings"]

    started: list[int] = []
    rerun = embed_folder(model, folder, out, batch_size=4, on_start=started.append)
    assert started == [8]
    assert (rerun.nrof_reused, rerun.nrof_embedded, rerun.nrof_images) == (4, 8, 12)
    final = read_embeddings(out)
    assert final.paths.tolist() == ref.paths.tolist()
    np.testing.assert_array_equal(final.embeddings, ref.embeddings)


def test_a_killed_embed_keeps_what_was_saved_periodically(
    image_tree: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = image_tree({"a": 4, "b": 4, "c": 4}, size=48)
    model = _fake_model(tmp_path)
    out, snapshot = tmp_path / "emb.npz", tmp_path / "on_disk.npz"
    seen: list[bool] = []

    def look(n: int) -> None:
        seen.append(out.exists())

    embed_folder(model, folder, out, batch_size=4, on_done=look)
    assert seen == [False, False, False]  # a short run is saved once, at its end
    out.unlink()

    monkeypatch.setattr(embed_module, "SAVE_SECONDS", 0.0)
    monkeypatch.setattr(embed_module, "SAVE_COST_RATIO", 0.0)
    batches: list[int] = []

    def kill_after_two(n: int) -> None:
        batches.append(n)
        if len(batches) == 2:
            shutil.copy(out, snapshot)  # what a kill -9 here would leave
            raise SystemExit(137)

    with pytest.raises(SystemExit):
        embed_folder(model, folder, out, batch_size=4, on_done=kill_after_two)
    assert len(read_embeddings(snapshot)) == 8
    shutil.copy(snapshot, out)
    rerun = embed_folder(model, folder, out, batch_size=4)
    assert (rerun.nrof_reused, rerun.nrof_embedded, rerun.nrof_images) == (8, 4, 12)
