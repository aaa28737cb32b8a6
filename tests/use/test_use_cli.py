"""compare, embed and classify through the CLI, on a tiny untrained model and real faces.

The model is untrained, so nothing here depends on its quality: identical photos are at distance
zero, near-duplicate crops of one face are nearer to each other than to other faces, and files
and errors are what the commands promise.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.models.sidecar import ModelInfo, read_model_info, with_threshold, write_model_info
from tests.align.faces import place

runner = CliRunner()
INFO = ModelInfo("small", 16, 40, "per_image", align_image_size=48, align_margin=8)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ``.keras`` file of an untrained ``small`` model with its ``model.json``."""
    import keras

    from facenet_cli.models.loading import build_model

    keras.utils.set_random_seed(0)  # the same untrained weights in every session
    folder = tmp_path_factory.mktemp("model")
    build_model(INFO).save(folder / "model.keras")
    write_model_info(folder, INFO)
    return folder / "model.keras"


def _faces_folder(root: Path, people: range, per_person: int = 5) -> Path:
    """Aligned-looking crops: each person one LFW face, each photo shifted and noisier."""
    from skimage import data

    faces = data.lfw_subset()[:100]
    rng = np.random.default_rng(0)
    for p in people:
        face = np.asarray(Image.fromarray((faces[p] * 255).astype(np.uint8)).resize((48, 48)))
        (root / f"person_{p:02d}").mkdir(parents=True)
        for k in range(per_person):
            img = np.roll(face, rng.integers(-1, 2, 2), axis=(0, 1)).astype(float)
            img = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
            rgb = np.repeat(img[:, :, None], 3, axis=2)
            Image.fromarray(rgb).save(root / f"person_{p:02d}" / f"person_{p:02d}_{k:04d}.png")
    return root


def _json(output: str) -> dict:
    return json.loads(output[output.index("{") :])


@pytest.mark.slow
def test_compare_judges_pairs_and_names_photos_without_a_face(
    model_file: Path, tmp_path: Path
) -> None:
    one, _ = place((200, 240), [(0.35, 10, 40)])
    two, _ = place((200, 400), [(0.35, 10, 10), (0.35, 10, 210)])
    Image.fromarray(one).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(one).save(tmp_path / "b.png")
    Image.fromarray(two).save(tmp_path / "pair.jpg", quality=95)
    Image.fromarray(np.full((120, 160, 3), 120, np.uint8)).save(tmp_path / "wall.jpg")
    (tmp_path / "text.jpg").write_text("not an image")
    photos = [str(tmp_path / n) for n in ("a.jpg", "b.png", "wall.jpg", "text.jpg", "pair.jpg")]

    result = runner.invoke(app, ["compare", str(model_file), *photos, "--json"])
    assert result.exit_code == 0, result.output
    out = _json(result.output)
    assert [f["photo"] for f in out["faces"]] == photos[:2] + photos[4:]  # central face only
    assert {Path(s["photo"]).name: s["reason"] for s in out["skipped"]} == {
        "wall.jpg": "no face found",
        "text.jpg": "not an image (unrecognised format)",
    }
    assert out["threshold"] is None
    assert out["alignment"]["margin"] == 8 and out["alignment"]["image_size"] == 48
    d = np.array(out["distances"])
    assert d.shape == (3, 3) and np.allclose(d, d.T)
    assert d[0, 1] < 0.01  # the same photo as JPEG and PNG

    # A threshold in model.json gives verdicts; --all-faces compares every face.
    write_model_info(model_file.parent, with_threshold(INFO, 0.01, 0, "test"))
    try:
        result = runner.invoke(app, ["compare", str(model_file), *photos, "--all_faces"])
    finally:
        write_model_info(model_file.parent, INFO)
    assert result.exit_code == 0, result.output
    assert "skipped: " in result.output and "wall.jpg: no face found" in result.output
    assert "pair.jpg#1" in result.output and "verdicts at 0.01" in result.output
    assert "same" in result.output

    result = runner.invoke(app, ["compare", str(model_file), photos[2]])
    assert result.exit_code == 3 and "wall.jpg: no face found" in result.output


def test_embed_classify_and_their_errors(model_file: Path, tmp_path: Path) -> None:
    known = _faces_folder(tmp_path / "known", range(4))
    strangers = _faces_folder(tmp_path / "strangers", range(50, 52), per_person=2)
    out = tmp_path / "emb.npz"

    result = runner.invoke(app, ["embed", str(model_file), str(known), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert _json(result.output)["embedded"] == 20
    with np.load(out, allow_pickle=False) as data:
        assert data["embeddings"].shape == (20, 16)
        assert data["paths"][0] == "person_00/person_00_0000.png"
        assert data["labels"].tolist() == sorted([0, 1, 2, 3] * 5)
    # A rerun reuses every row; a rewritten image is embedded again.
    changed = known / "person_01" / "person_01_0002.png"
    os.utime(changed, ns=(1, 1))
    summary = _json(runner.invoke(app, ["embed", str(model_file), str(known), "--out",
                                        str(out), "--json"]).output)  # fmt: skip
    assert (summary["reused"], summary["embedded"]) == (19, 1)
    # --xla compiles the forward pass; the embeddings are the plain graph's.
    xla_out = tmp_path / "emb_xla.npz"
    result = runner.invoke(app, ["embed", str(model_file), str(known), "--out", str(xla_out),
                                 "--xla", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as plain, np.load(xla_out, allow_pickle=False) as xla:
        np.testing.assert_allclose(xla["embeddings"], plain["embeddings"], atol=1e-4)

    clf = tmp_path / "clf.npz"
    args = ["classify", "train", str(model_file), str(known), "--out", str(clf), "--json",
            "--use_split_dataset", "--min-nrof-images-per-class", "5",
            "--nrof-train-images-per-class", "3"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = _json(result.output)
    assert report["people"] == 4 and report["train_images"] == 12
    assert report["held_out"]["images"] == 8 and report["held_out"]["accuracy"] >= 0.75
    assert report["threshold_source"] == "calibrated on the training photos, leave-one-out"
    # 4 people x 2 photos beyond their first: too few differences to whiten 16 dimensions.
    assert report["flip"] and not report["whitened"]
    assert 0.0 <= report["calibration"]["strangers_rejected"] <= 1.0
    # A floor of 1: every training photo's own person lies within the calibrated threshold.
    floor_args = [*args[:5], str(tmp_path / "floor.npz"), *args[6:], "--known_rate", "1"]
    floor = _json(runner.invoke(app, floor_args).output)
    assert floor["calibration"]["known_accepted"] == 1.0
    assert floor["threshold_source"].endswith("known people >= 1")
    assert floor["distance_threshold"] >= report["distance_threshold"]

    # Nothing is within distance 0 of a training photo: every face is "unknown", with the
    # nearest name and the reason kept.
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(strangers),
                                 "--json", "--threshold", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    predictions = _json(result.output)["predictions"]
    assert len(predictions) == 4 and all(p["name"] == "unknown" for p in predictions)
    assert all(p["nearest"].startswith("person_0") for p in predictions)
    assert all(p["unknown_because"].startswith("distance") for p in predictions)
    one = known / "person_02" / "person_02_0004.png"
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(one)])
    assert result.exit_code == 0 and "person_02" in result.output

    clf.write_bytes(clf.read_bytes()[:100])
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(one)])
    assert result.exit_code == 3
    assert result.output.count("\n") == 1 and "not a readable classifier file" in result.output


def test_validate_threshold_is_recorded_only_when_it_applies(tmp_path: Path) -> None:
    from facenet_cli.evaluate.metrics import evaluate
    from facenet_cli.evaluate.record import record_threshold
    from facenet_cli.evaluate.validate import ValidationReport

    rng = np.random.default_rng(0)
    e1, e2 = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    issame = np.arange(20) % 2 == 0
    e2[issame] = e1[issame] + 0.1
    report = ValidationReport(evaluate(e1, e2, issame, nrof_folds=2), tmp_path, tmp_path / "p.txt",
                              20, np.arange(20), [], 40, 40, 1.0, False)  # fmt: skip
    write_model_info(tmp_path, INFO)
    assert record_threshold(tmp_path, INFO, report, subtract_mean=True) == INFO
    updated = record_threshold(tmp_path, INFO, report)
    assert read_model_info(tmp_path) == updated
    assert updated.threshold == report.result.threshold and updated.threshold_metric == 0
    assert "2-fold verification on 20 pairs of p.txt" in (updated.threshold_protocol or "")


def test_flip_fuses_a_face_with_its_mirror_and_classify_embeds_as_it_was_trained(
    model_file: Path, tmp_path: Path
) -> None:
    known = _faces_folder(tmp_path / "known", range(3), per_person=3)
    photo = known / "person_00" / "person_00_0000.png"
    mirrored = tmp_path / "mirror" / "person_00"
    mirrored.mkdir(parents=True)
    Image.open(photo).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirrored / "m_0000.png")
    Image.open(photo).save(mirrored / "m_0001.png")

    def embeddings(*flags: str) -> np.ndarray:
        out = tmp_path / f"emb{''.join(flags)}.npz"
        result = runner.invoke(
            app, ["embed", str(model_file), str(mirrored.parent), "--out", str(out), *flags]
        )
        assert result.exit_code == 0, result.output
        with np.load(out, allow_pickle=False) as data:
            return data["embeddings"]

    plain, fused = embeddings(), embeddings("--flip")
    assert np.linalg.norm(plain[0] - plain[1]) > 1e-3  # the model is not mirror-symmetric
    np.testing.assert_allclose(fused[0], fused[1], atol=1e-5)  # the fusion is
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, atol=1e-5)
    expected = plain[0] + plain[1]
    np.testing.assert_allclose(fused[1], expected / np.linalg.norm(expected), atol=1e-5)

    for flags, flip in (([], True), (["--no-flip"], False)):
        clf = tmp_path / f"clf{flip}.npz"
        result = runner.invoke(app, ["classify", "train", str(model_file), str(known), "--out",
                                     str(clf), "--json", *flags])  # fmt: skip
        assert result.exit_code == 0, result.output
        assert _json(result.output)["flip"] is flip
        # A training photo is at distance 0 from itself only when predict embeds it the way
        # train did.
        result = runner.invoke(
            app, ["classify", "predict", str(model_file), str(clf), str(photo), "--json"]
        )
        assert result.exit_code == 0, result.output
        (row,) = _json(result.output)["predictions"]
        assert row["nearest"] == "person_00" and row["distance"] < 1e-4


def test_use_commands_guard_their_inputs_and_outputs(model_file: Path, tmp_path: Path) -> None:
    import keras

    from facenet_cli.models.loading import build_model

    known = _faces_folder(tmp_path / "known", range(3), per_person=4)
    (known / "person_01" / "notes.txt").write_text("not a photo")  # skipped, labels kept aligned
    photo = known / "person_00" / "person_00_0000.png"
    # Distances are finite and not negative; an output needs a file name.
    for args in (["compare", str(model_file), str(photo), str(photo), "--threshold", "nan"],
                 ["compare", str(model_file), str(photo), str(photo), "--threshold", "-1"],
                 ["embed", str(model_file), str(known), "--out", ""]):  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
    # One face is nothing to compare.
    result = runner.invoke(app, ["compare", str(model_file), str(photo)])
    assert result.exit_code == 3 and "the only face found" in result.output

    clf = tmp_path / "clf.npz"
    result = runner.invoke(app, ["classify", "train", str(model_file), str(known), "--out",
                                 str(clf), "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    # A mistyped --out does not replace a file of the other kind.
    emb = tmp_path / "emb.npz"
    assert (
        runner.invoke(app, ["embed", str(model_file), str(known), "--out", str(emb)]).exit_code == 0
    )
    before = clf.read_bytes()
    result = runner.invoke(app, ["embed", str(model_file), str(known), "--out", str(clf)])
    assert result.exit_code == 3 and "is a facenet classifier file; not replaced" in result.output
    assert clf.read_bytes() == before
    result = runner.invoke(app, ["classify", "train", str(model_file), str(known), "--out",
                                 str(emb)])  # fmt: skip
    assert result.exit_code == 3 and "is a facenet embeddings file" in result.output
    # A folder that is a file: the error names the path asked for, not a temporary file.
    result = runner.invoke(app, ["embed", str(model_file), str(known), "--out",
                                 str(emb / "x.npz")])  # fmt: skip
    assert result.exit_code == 6 and f"{emb / 'x.npz'}: cannot write ({emb} is a file" in (
        result.output
    )
    # Every photo of a folder of identities keeps its own person's name.
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(known),
                                 "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = _json(result.output)["predictions"]
    assert len(rows) == 12 and all(Path(r["image"]).parent.name == r["nearest"] for r in rows)
    # Nothing held out: said, not an empty table.
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(known),
                                 "--use-split-dataset", "--min-nrof-images-per-class", "2",
                                 "--nrof-train-images-per-class", "4"])  # fmt: skip
    assert result.exit_code == 3 and "no held-out images" in result.output
    # Another model of the same shape (other weights) is noticed; another size is an error.
    keras.utils.set_random_seed(1)
    other = tmp_path / "other"
    other.mkdir()
    build_model(INFO).save(other / "model.keras")
    write_model_info(other, INFO)
    result = runner.invoke(app, ["classify", "predict", str(other / "model.keras"), str(clf),
                                 str(photo)])  # fmt: skip
    assert result.exit_code == 0 and "trained on another model's embeddings" in result.output
    result = runner.invoke(app, ["classify", "predict", str(model_file), str(clf), str(photo)])
    assert "another model" not in result.output
    wide = tmp_path / "wide"
    wide.mkdir()
    wide_info = ModelInfo("small", 8, 40, "per_image", align_image_size=48, align_margin=8)
    build_model(wide_info).save(wide / "model.keras")
    write_model_info(wide, wide_info)
    result = runner.invoke(app, ["classify", "predict", str(wide / "model.keras"), str(clf),
                                 str(photo)])  # fmt: skip
    assert result.exit_code == 3 and result.output.count("\n") == 1
    assert "fitted on 16-dimensional embeddings" in result.output
