"""evaluate_on_pairs and `facenet validate` on the real LFW pairs file (the copy the package
ships) over a synthetic tree, and on path-based pairs of a folder named any way."""

from __future__ import annotations

import functools
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.data.pairs import PathPair, read_pairs
from facenet_cli.errors import InputError
from facenet_cli.evaluate.metrics import evaluate
from facenet_cli.evaluate.validate import evaluate_on_pairs
from tests.conftest import LFW_PAIRS

SIZE = 16
runner = CliRunner()


def block_embed(images: np.ndarray) -> np.ndarray:
    """A real, deterministic embedding: 4x4 block means of the centred pixels, L2-normalised.

    Not flip-invariant, so flipped images give different embeddings.
    """
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    blocks = images.reshape(n, 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4))
    v = blocks.reshape(n, -1) - 127.5
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def identity_image(name: str, idx: int) -> np.ndarray:
    """Identity = a coarse colour pattern; each photo adds its own noise."""
    base_rng = np.random.default_rng(zlib.crc32(name.encode()))
    base = base_rng.integers(40, 216, (4, 4, 3)).repeat(SIZE // 4, 0).repeat(SIZE // 4, 1)
    noise = np.random.default_rng(zlib.crc32(f"{name}/{idx}".encode())).normal(0, 40, base.shape)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def lfw_images() -> list[tuple[str, int]]:
    seen: dict[tuple[str, int], None] = {}
    for p in read_pairs(LFW_PAIRS):
        seen[(p.name1, p.idx1)] = None
        seen[(p.name2, p.idx2)] = None
    return list(seen)


@pytest.fixture(scope="module")
def lfw_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """Every image the real pairs file names, as a 16 px PNG; 30 of them deleted."""
    root = tmp_path_factory.mktemp("lfw")
    images = lfw_images()
    for name, idx in images:
        d = root / name
        d.mkdir(exist_ok=True)
        Image.fromarray(identity_image(name, idx)).save(d / f"{name}_{idx:04d}.png")
    rng = np.random.default_rng(0)
    removed = []
    for i in rng.choice(len(images), 30, replace=False):
        name, idx = images[i]
        path = root / name / f"{name}_{idx:04d}.png"
        path.unlink()
        removed.append(path)
    return root, removed


@functools.cache
def read_png(path: Path) -> np.ndarray | None:
    if not path.exists():
        return None
    with Image.open(path) as im:
        return np.asarray(im, dtype=np.float32)[None]


def expected_result(root: Path, flipped: bool = False, **kw):
    """The protocol computed directly: Pillow reads, block_embed, kept pairs only."""
    pairs = read_pairs(LFW_PAIRS)
    e1, e2, issame = [], [], []
    for p in pairs:
        a = read_png(root / p.name1 / f"{p.name1}_{p.idx1:04d}.png")
        b = read_png(root / p.name2 / f"{p.name2}_{p.idx2:04d}.png")
        if a is None or b is None:
            continue
        if flipped:
            e1.append(np.concatenate([block_embed(a), block_embed(a[:, :, ::-1])], axis=1))
            e2.append(np.concatenate([block_embed(b), block_embed(b[:, :, ::-1])], axis=1))
        else:
            e1.append(block_embed(a))
            e2.append(block_embed(b))
        issame.append(p.issame)
    return evaluate(np.concatenate(e1), np.concatenate(e2), np.array(issame), **kw)


def test_real_pairs_with_missing_images(lfw_tree):
    root, removed = lfw_tree
    seen = []
    report = evaluate_on_pairs(
        block_embed, root, LFW_PAIRS, image_size=SIZE, batch_size=256,
        on_start=seen.append,
    )  # fmt: skip
    pairs = read_pairs(LFW_PAIRS)
    removed_set = set(removed)
    affected = [
        i for i, p in enumerate(pairs)
        if root / p.name1 / f"{p.name1}_{p.idx1:04d}.png" in removed_set
        or root / p.name2 / f"{p.name2}_{p.idx2:04d}.png" in removed_set
    ]  # fmt: skip
    assert report.nrof_pairs_listed == 6000
    assert report.nrof_pairs_skipped == len(affected) > 0
    assert set(report.missing) == removed_set
    assert not set(affected) & set(report.kept.tolist())
    # Each distinct image of the kept pairs is read once.
    used = {(p.name1, p.idx1) for i, p in enumerate(pairs) if i not in affected}
    used |= {(p.name2, p.idx2) for i, p in enumerate(pairs) if i not in affected}
    assert report.nrof_images == seen[0] == len(used) < 7701 - 30
    [warning] = report.warnings
    assert "30 image(s) not found" in warning
    assert f"skipped {len(affected)} of 6000 pairs" in warning
    assert "no longer equal the official ones" in warning

    want = expected_result(root)
    got = report.result
    assert got.nrof_pairs == 6000 - len(affected)
    np.testing.assert_allclose(got.accuracy, want.accuracy, atol=1e-12)
    np.testing.assert_allclose(got.tpr, want.tpr, atol=1e-12)
    assert got.auc == pytest.approx(want.auc, abs=1e-9)
    # The synthetic identities are recognisable, but not trivially.
    assert 0.8 < got.accuracy_mean < 1.0


def test_flipped_images_in_one_pass(lfw_tree):
    root, _ = lfw_tree
    calls = []

    def counting_embed(images):
        calls.append(len(images))
        return block_embed(images)

    report = evaluate_on_pairs(
        counting_embed, root, LFW_PAIRS, image_size=SIZE, batch_size=1000,
        use_flipped_images=True, distance_metric=1, subtract_mean=True,
    )  # fmt: skip
    # One call per batch of 1000 images, each carrying the images and their mirrors.
    assert calls[0] == 2000 and len(calls) == 8
    assert report.nrof_forward == 2 * report.nrof_images
    want = expected_result(root, flipped=True, distance_metric=1, subtract_mean=True)
    np.testing.assert_allclose(report.result.accuracy, want.accuracy, atol=1e-12)
    assert report.result.eer == pytest.approx(want.eer, abs=1e-9)


def test_strict_names_the_first_missing_image(lfw_tree):
    root, removed = lfw_tree
    with pytest.raises(InputError, match=r"\.png: image of pair \d+ not found"):
        evaluate_on_pairs(block_embed, root, LFW_PAIRS, image_size=SIZE, strict=True)


def test_too_few_pairs_left(tmp_path, image_tree):
    root = image_tree({"a": 2, "b": 1})
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a\t1\t2\na\t1\tb\t1\na\t1\t3\n")
    with pytest.raises(InputError, match="only 2 of 3 pairs"):
        evaluate_on_pairs(block_embed, root, pairs, image_size=SIZE, nrof_folds=10)


def test_a_crop_cache_decodes_once_and_changes_nothing(tmp_path, image_tree):
    from facenet_cli.data.pairs import make_pairs, write_pairs
    from facenet_cli.evaluate.validate import CropCache

    root = image_tree({f"p{i}": 4 for i in range(6)}, size=20)
    pairs = tmp_path / "pairs.txt"
    write_pairs(pairs, make_pairs(root, 2, 6, seed=0), 2, 6)
    kw = dict(image_size=SIZE, batch_size=7, nrof_folds=2)
    streamed = evaluate_on_pairs(block_embed, root, pairs, **kw)
    cache = CropCache()
    first = evaluate_on_pairs(block_embed, root, pairs, cache=cache, **kw)
    assert cache.decoded == streamed.nrof_images
    assert cache.nbytes == streamed.nrof_images * SIZE * SIZE * 3
    second = evaluate_on_pairs(block_embed, root, pairs, cache=cache, **kw)
    assert cache.decoded == streamed.nrof_images  # read back, not decoded again
    for report in (first, second):
        assert report.result.accuracy_mean == streamed.result.accuracy_mean
        assert np.array_equal(report.result.tpr, streamed.result.tpr)

    # Another crop size is another set of crops; one over the limit streams every time.
    def colour_embed(images: np.ndarray) -> np.ndarray:
        v = np.asarray(images, np.float32).mean(axis=(1, 2)) - 127.5
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    evaluate_on_pairs(colour_embed, root, pairs, cache=cache, **{**kw, "image_size": 12})
    assert cache.decoded == 2 * streamed.nrof_images
    small = CropCache(max_bytes=streamed.nrof_images * SIZE * SIZE * 3 - 1)
    for _ in range(2):
        evaluate_on_pairs(block_embed, root, pairs, cache=small, **kw)
    assert small.decoded == 2 * streamed.nrof_images and small.nbytes == 0


# ------------------------------------------------------------------------- the CLI, real model


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `small` network saved as an exported-style folder: model.keras + model.json."""
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo, write_model_info

    out = tmp_path_factory.mktemp("model")
    model = create_model("small", embedding_size=8, image_size=SIZE, width=4)
    model.save(out / "model.keras")
    write_model_info(out, ModelInfo("small", 8, SIZE, "per_image"))
    return out


def test_cli_json_roc_and_conflicting_flag(lfw_tree, small_model, tmp_path):
    root, _ = lfw_tree
    roc_csv = tmp_path / "roc.csv"
    result = runner.invoke(app, [
        "validate", str(root), str(small_model), "--lfw-pairs", str(LFW_PAIRS),
        "--json", "--roc", str(roc_csv), "--use-fixed-image-standardization",
        "--lfw-batch-size", "500",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["pairs_listed"] == 6000 and data["pairs_skipped"] > 0
    assert 7000 < data["images"] < 7701 - 30
    assert 0.0 <= data["accuracy"] <= 1.0 and 0.0 <= data["auc"] <= 1.0
    assert len(data["folds"]["accuracy"]) == 10
    assert data["model_info"]["standardization"] == "per_image"
    assert any("overrides the model's own standardisation" in w for w in data["warnings"])
    assert "overrides the model's own standardisation" in result.stderr
    assert "folds no longer equal the official ones" in result.stderr
    lines = roc_csv.read_text().splitlines()
    assert lines[0] == "threshold,fpr,tpr" and len(lines) == 401


def test_cli_records_the_threshold_only_when_asked_and_prints_before_a_failing_roc(
    lfw_tree, small_model, tmp_path
):
    import shutil

    from facenet_cli.models.sidecar import read_model_info

    root, _ = lfw_tree
    model = tmp_path / "model"
    shutil.copytree(small_model, model)
    args = ["validate", str(root), str(model), "--lfw-pairs", str(LFW_PAIRS),
            "--lfw-batch-size", "500"]  # fmt: skip
    before = (model / "model.json").read_text()
    result = runner.invoke(app, [*args, "--no-record-threshold"])
    assert result.exit_code == 0, result.output
    assert "recorded in" not in result.output and (model / "model.json").read_text() == before
    # A ROC file that cannot be written fails the command, after the results are out.
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = runner.invoke(app, [*args, "--json", "--roc", str(blocked / "roc.csv")])
    assert result.exit_code == 6, result.output
    data = json.loads(result.stdout)
    assert data["threshold_recorded_in"] == str(model / "model.json")
    assert read_model_info(model).threshold == pytest.approx(data["threshold"], abs=1e-6)
    assert "roc.csv" in result.stderr
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and f"recorded in {model / 'model.json'}" in result.stderr


def test_cli_table_and_png(lfw_tree, small_model, tmp_path):
    root, _ = lfw_tree
    png = tmp_path / "roc.png"
    # No --lfw-pairs and no pairs.txt in or beside the folder: the shipped LFW pairs file.
    result = runner.invoke(app, [
        "validate", str(root), str(small_model),
        "--roc", str(png), "--lfw-batch-size", "500", "--distance-metric", "1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    for row in (
        "Accuracy",
        "Validation rate",
        "Area Under Curve (AUC)",
        "Equal Error Rate (EER)",
        "Threshold",
        "FPR (log)",
        "angular",
    ):
        assert row in out
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (480, 480)


def test_cli_strict_is_an_input_error(lfw_tree, small_model):
    root, _ = lfw_tree
    result = runner.invoke(app, [
        "validate", str(root), str(small_model), "--lfw-pairs", str(LFW_PAIRS), "--strict",
    ])  # fmt: skip
    assert result.exit_code == 3
    assert "error:" in result.stderr and "not found" in result.stderr


def test_cli_folder_that_is_not_lfw_without_pairs(tmp_path, small_model):
    (tmp_path / "lfw").mkdir()
    result = runner.invoke(app, ["validate", str(tmp_path / "lfw"), str(small_model)])
    assert result.exit_code == 3
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith(f"error: {LFW_PAIRS}: only 0 of 6000 pairs")
    assert "--lfw-pairs" in line and f"facenet pairs {tmp_path / 'lfw'}" in line


def _own_faces(root: Path, people: int, photos: int) -> Path:
    """Photos named the way people name their own: s1/1.png ... s8/4.png."""
    for i in range(1, people + 1):
        (root / f"s{i}").mkdir(parents=True)
        for k in range(1, photos + 1):
            Image.fromarray(identity_image(f"s{i}", k)).save(root / f"s{i}" / f"{k}.png")
    return root


def test_pairs_then_validate_on_own_file_names(tmp_path, small_model):
    root = _own_faces(tmp_path / "faces", 8, 4)
    out = tmp_path / "pairs.txt"
    # One fold cannot be cross-validated; LFW lines need LFW names; a blocked output is named.
    result = runner.invoke(app, ["pairs", str(root), "--out", str(out), "--nrof-folds", "1"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["pairs", str(root), "--out", str(out), "--format", "lfw",
                                 "--nrof-folds", "2", "--pairs-per-fold", "6"])  # fmt: skip
    assert result.exit_code == 3 and "as the LFW format needs" in result.output
    result = runner.invoke(app, ["pairs", str(root), "--out", str(root / "s1" / "1.png" / "p.txt"),
                                 "--nrof-folds", "2", "--pairs-per-fold", "6"])  # fmt: skip
    assert result.exit_code == 6 and "1.png is a file, not a folder" in result.output
    result = runner.invoke(app, [
        "pairs", str(root), "--out", str(out), "--nrof-folds", "2", "--pairs-per-fold", "6",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "identity-disjoint" in result.stdout
    assert out.read_text().splitlines()[1].endswith("\tsame")
    (root / "s1" / "1.png").unlink()  # a missing image: its pairs are skipped and reported
    # The folds are the file's own (its "2 6" header), without --lfw-nrof-folds.
    result = runner.invoke(app, [
        "validate", str(root), str(small_model), "--lfw-pairs", str(out), "--json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["nrof_folds"] == 2
    listed = [(p.path1, p.path2) for p in read_pairs(out) if isinstance(p, PathPair)]
    kept = [pair for pair in listed if "s1/1.png" not in pair]
    assert len(listed) == 24 and 0 < len(kept) < 24
    assert data["pairs_used"] == len(kept) and data["pairs_skipped"] == 24 - len(kept)
    assert data["images"] == len({path for pair in kept for path in pair})
    # The protocol on the same file reads the same images the LFW way would: identities stay apart.
    report = evaluate_on_pairs(block_embed, root, out, image_size=SIZE, nrof_folds=2)
    assert report.missing == [root / "s1" / "1.png"] and report.result.accuracy.mean() > 0.8
    result = runner.invoke(app, [
        "validate", str(root), str(small_model), "--lfw-pairs", str(out), "--strict",
    ])  # fmt: skip
    assert result.exit_code == 3 and f"{root / 's1' / '1.png'}: image of pair" in result.stderr


# ---------------------------------------------------------------------------- demo and pairs


def test_no_arguments_validates_the_newest_demo_run(tmp_path, monkeypatch, small_model):
    import os
    import shutil

    from facenet_cli.data.demo_faces import demo_paths
    from facenet_cli.data.pairs import make_pairs, write_pairs

    monkeypatch.setenv("FACENET_CACHE", str(tmp_path / "cache"))
    demo = demo_paths()
    for i in range(12):
        name = f"id{i:02d}"
        (demo.aligned_test / name).mkdir(parents=True)
        for k in range(1, 5):
            Image.fromarray(identity_image(name, k)).save(
                demo.aligned_test / name / f"{name}_{k:04d}.png"
            )
    write_pairs(demo.pairs, make_pairs(demo.aligned_test, 2, 10, seed=1), 2, 10)
    older, newer = demo.root / "models" / "run-a", demo.root / "models" / "run-b"
    shutil.copytree(small_model, older)
    shutil.copytree(small_model, newer)
    for f in older.iterdir():
        os.utime(f, (1_000_000, 1_000_000))
    result = runner.invoke(app, ["validate", "--json", "--lfw-nrof-folds", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == str(newer)
    assert data["lfw_dir"] == str(demo.aligned_test)
    assert data["pairs"] == str(demo.pairs)
    assert data["pairs_used"] == 40 and data["warnings"] == []


def test_no_arguments_without_a_demo_run(tmp_path, monkeypatch):
    monkeypatch.setenv("FACENET_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 3
    assert "no demo run" in result.stderr and "facenet train" in result.stderr


def test_make_pairs_from_validate(tmp_path, image_tree):
    root = image_tree({f"p{i}": 3 for i in range(6)})
    out = tmp_path / "own_pairs.txt"
    result = runner.invoke(app, [
        "validate", "--make-pairs", str(root), "--out", str(out),
        "--lfw-nrof-folds", "2", "--pairs-per-fold", "4",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    pairs = read_pairs(out)
    assert len(pairs) == 16 and sum(p.issame for p in pairs) == 8
    # The file it wrote is one the protocol can run on.
    report = evaluate_on_pairs(block_embed, root, out, image_size=SIZE, nrof_folds=2)
    assert report.nrof_pairs_used == 16 and not report.warnings


def test_cli_run_directory_uses_moving_average_weights(lfw_tree, tmp_path):
    import tensorflow as tf

    from facenet_cli.models.loading import embedding_fn
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo, write_model_info

    root, _ = lfw_tree
    pairs = tmp_path / "pairs.txt"
    # Two folds of 50 matched + 50 mismatched pairs from the real file's first fold.
    lines = LFW_PAIRS.read_text().splitlines(keepends=True)[1:]
    pairs.write_text("".join(lines[0:50] + lines[300:350] + lines[50:100] + lines[350:400]))
    info = ModelInfo("small", 8, SIZE, "per_image")
    # Two independently initialised copies: the checkpoint's model and its moving average
    # (default width: the loader rebuilds the architecture from model.json alone).
    model = create_model("small", embedding_size=8, image_size=SIZE)
    ema = create_model("small", embedding_size=8, image_size=SIZE)
    run = tmp_path / "run"
    write_model_info(run, info)
    ckpt = tf.train.Checkpoint(model=model, ema_model=ema, step=tf.Variable(7, dtype=tf.int64))
    tf.train.CheckpointManager(ckpt, str(run), max_to_keep=2, checkpoint_name="ckpt").save(
        checkpoint_number=7
    )
    result = runner.invoke(
        app, ["validate", str(root), str(run), "--lfw-pairs", str(pairs), "--json",
              "--lfw-nrof-folds", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    kw = {"image_size": SIZE, "nrof_folds": 2}
    want = evaluate_on_pairs(embedding_fn(ema, info), root, pairs, **kw).result
    assert got["folds"]["accuracy"] == pytest.approx(want.accuracy.tolist(), abs=1e-12)
    assert got["auc"] == pytest.approx(want.auc, abs=1e-9)
    # The two weight sets really embed differently, so the match above is not a coincidence.
    x = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    assert not np.allclose(embedding_fn(ema, info)(x), embedding_fn(model, info)(x), atol=1e-3)


def test_cli_image_size_flag_conflicting_with_the_sidecar(tmp_path, small_model):
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = tmp_path / "faces"
    for i in range(8):
        name = f"id{i}"
        (root / name).mkdir(parents=True)
        for k in range(1, 4):
            Image.fromarray(identity_image(name, k)).save(root / name / f"{name}_{k:04d}.png")
    write_pairs(root / "pairs.txt", make_pairs(root, 2, 6, seed=0), 2, 6)
    # No --lfw-pairs: pairs.txt inside LFW_DIR is found.
    result = runner.invoke(
        app, ["validate", str(root), str(small_model), "--json", "--image-size", "12",
              "--lfw-nrof-folds", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "--image-size 12 differs from the model's input size 16" in result.stderr
    data = json.loads(result.stdout)
    assert data["pairs_used"] == 24 and data["pairs"] == str(root / "pairs.txt")


def test_cli_xla_gives_the_same_figures(tmp_path, image_tree, small_model):
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = image_tree({f"p{i}": 3 for i in range(5)}, size=20)
    pairs = tmp_path / "pairs.txt"
    write_pairs(pairs, make_pairs(root, 2, 4, seed=0), 2, 4)
    args = ["validate", str(root), str(small_model), "--lfw-pairs", str(pairs),
            "--lfw-nrof-folds", "2", "--json"]  # fmt: skip
    plain = runner.invoke(app, [*args, "--no-xla"])
    compiled = runner.invoke(app, [*args, "--xla"])
    assert plain.exit_code == 0 and compiled.exit_code == 0, compiled.output
    a, b = json.loads(plain.stdout), json.loads(compiled.stdout)
    assert a["images"] == b["images"] > 0
    assert a["accuracy"] == pytest.approx(b["accuracy"])
    assert a["auc"] == pytest.approx(b["auc"], abs=1e-6)
