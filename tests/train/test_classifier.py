"""Classifier training (--loss softmax|arcface|cosface) end to end on tiny generated data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli import events
from facenet_cli.cli import app
from facenet_cli.data.dataset import ImageClass
from facenet_cli.errors import InputError
from facenet_cli.train.classifier_data import (
    batch_rows,
    filter_dataset,
    read_filter_file,
    split_dataset,
)
from tests.conftest import make_image_tree
from tests.train.test_train_loop import Recorder, scalars, tiny_config


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """6 identities x 4 images + a singleton class (fine for a classifier), and pairs."""
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = tmp_path_factory.mktemp("tiny")
    data = make_image_tree(root / "ds", {f"id{i}": 4 for i in range(6)} | {"single": 1}, size=20)
    write_pairs(root / "pairs.txt", make_pairs(data, nrof_folds=2, pairs_per_fold=6, seed=1), 2, 6)
    return {"root": root, "data": data, "pairs": root / "pairs.txt"}


@pytest.mark.parametrize("loss", ["softmax", "arcface", "cosface"])
def test_each_loss_trains_through_the_cli_and_exports_no_logits(tiny, tmp_path, loss) -> None:
    args = [
        "train", "--data-dir", str(tiny["data"]), "--logs-base-dir", str(tmp_path / "logs"),
        "--models-base-dir", str(tmp_path / "models"), "--model-def", "small",
        "--image-size", "16", "--embedding-size", "8", "--batch-size", "5", "--epoch-size", "3",
        "--max-nrof-epochs", "1", "--loss", loss, "--optimizer", "ADAM",
        "--learning-rate", "0.01", "--lfw-dir", str(tiny["data"]),
        "--lfw-pairs", str(tiny["pairs"]), "--lfw-nrof-folds", "2", "--random-flip",
        "--random-rotate", "--random-color",
    ]  # fmt: skip
    if loss == "softmax":
        args += ["--center-loss-factor", "0.01", "--prelogits-norm-loss-factor", "0.001",
                 "--weight-decay", "0.0001"]  # fmt: skip
    if loss == "cosface":
        args += ["--flip-fusion"]
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "logs").iterdir()
    values = scalars(run)
    assert [s for s, _ in values[events.CLS_CROSS_ENTROPY]] == [1, 2, 3]
    assert all(np.isfinite(v) and v > 0 for _, v in values[events.LOSS])
    assert all(0.0 <= v <= 1.0 for _, v in values[events.CLS_ACCURACY])
    assert events.LFW_ACCURACY in values and events.CLS_PRELOGITS_NORM in values
    assert (events.CLS_CENTER_LOSS in values) == (loss == "softmax")
    assert (events.CLS_REGULARIZATION in values) == (loss == "softmax")
    assert events.TRIPLETS_SELECTED not in values
    import keras

    export = tmp_path / "models" / run.name / "export"
    (keras_file,) = export.glob("*.keras")
    model = keras.saving.load_model(keras_file, safe_mode=True, compile=False)
    names = [layer.name for layer in model.layers]
    assert "Logits" not in names and model.output_shape == (None, 8)
    from facenet_cli.models.loading import load_embedding_model

    loaded = load_embedding_model(export)
    assert bool(loaded.info.flip_fusion) == (loss == "cosface")
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    same = np.allclose(loaded.embed(pixels), loaded.embed(pixels[:, :, ::-1]), atol=1e-5)
    assert same == (loss == "cosface")


@pytest.mark.slow
def test_classifier_resume_continues_at_the_step_with_the_same_batches(tiny, tmp_path) -> None:
    from facenet_cli.train.run import run_train

    settings = dict(
        loss="cosface", batch_size=4, epoch_size=2, max_nrof_epochs=3, optimizer="ADAM",
        validation_set_split_ratio=0.25, validate_every_n_epochs=1, learning_rate=0.01,
    )  # fmt: skip
    whole = run_train(tiny_config(tiny, tmp_path / "a", **settings), Recorder())
    stopped = run_train(tiny_config(tiny, tmp_path / "b", **settings, max_steps=3), Recorder())
    assert stopped.step == 3
    recorder = Recorder()
    resumed = run_train(tiny_config(tiny, tmp_path / "b", resume=stopped.run_dir, max_steps=6,
                                    max_nrof_epochs=3),
                        recorder)  # fmt: skip
    assert recorder.steps[0].step == 4 and resumed.step == whole.step == 6
    a = scalars(whole.log_dir)[events.LOSS]
    b = scalars(resumed.log_dir)[events.LOSS]
    # Same batches and weights after the resume: the losses agree step by step.
    np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=1e-4)
    values = scalars(resumed.log_dir)
    assert len(values[events.VAL_ACCURACY]) == 3  # after each epoch, on the held-out images
    assert (resumed.run_dir / "prelogits_hist.npy").is_file()


def test_classifier_options_are_checked(tiny, tmp_path) -> None:
    from facenet_cli.train.run import run_train

    with pytest.raises(InputError, match="--loss 'center'"):
        run_train(tiny_config(tiny, tmp_path, loss="center"), Recorder())
    with pytest.raises(InputError, match="--validation-set-split-ratio"):
        run_train(tiny_config(tiny, tmp_path, loss="softmax", validation_set_split_ratio=1.0),
                  Recorder())  # fmt: skip
    with pytest.raises(InputError, match="filter file not found"):
        run_train(tiny_config(tiny, tmp_path, loss="softmax", filter_filename=tmp_path / "x.h5"),
                  Recorder())  # fmt: skip


def test_batch_order_is_a_function_of_the_step() -> None:
    rows = np.concatenate([batch_rows(s, 4, 10, seed=7) for s in range(5)])
    # Each pass over the 10 images is a permutation; a batch may straddle two passes.
    assert sorted(rows[:10]) == list(range(10)) and sorted(rows[10:20]) == list(range(10))
    np.testing.assert_array_equal(batch_rows(3, 4, 10, seed=7), rows[12:16])
    assert not np.array_equal(batch_rows(0, 4, 10, seed=8), rows[:4])


def test_validation_split_and_filter_follow_the_original() -> None:
    classes = [ImageClass(f"c{i}", tuple(Path(f"c{i}_{j}.png") for j in range(n)))
               for i, n in enumerate([1, 2, 5, 10])]  # fmt: skip
    train, val = split_dataset(classes, 0.2, 2, np.random.default_rng(0))
    # floor(n * 0.8), at most n - 1: 1 -> 0 (dropped), 2 -> 1 (< 2, dropped), 5 -> 4, 10 -> 8.
    assert [c.name for c in train] == ["c2", "c3"] == [c.name for c in val]
    assert [len(c) for c in train] == [4, 8] and [len(c) for c in val] == [1, 2]
    assert not set(train[1].image_paths) & set(val[1].image_paths)
    distances = {f"c3_{j}.png": float(j) for j in range(10)}
    kept = filter_dataset(classes, distances, 50.0, 3)
    # The 50th percentile of 0..9 is 4.5: c3 keeps 0..4; c0 (1 image) falls below 3.
    assert [c.name for c in kept] == ["c2", "c3"] and len(kept[1]) == 5


def test_filter_file_reads_the_originals_hdf5_and_npz(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")  # a Keras dependency, so normally present
    paths = [b"/data/a/a_0001.png", b"/data/b/b_0002.png"]
    original = tmp_path / "filter.h5"
    with h5py.File(original, "w") as f:  # the original's layout: byte-string paths
        f.create_dataset("image_list", data=np.array(paths, dtype="S"))
        f.create_dataset("distance_to_center", data=np.array([0.5, 1.5]))
    expected = {"a_0001.png": 0.5, "b_0002.png": 1.5}
    assert read_filter_file(original) == expected
    np.savez(tmp_path / "filter.npz", image_list=np.array(["a/a_0001.png", "b/b_0002.png"]),
             distance_to_center=np.array([0.5, 1.5]))  # fmt: skip
    assert read_filter_file(tmp_path / "filter.npz") == expected
    incomplete = tmp_path / "incomplete.h5"
    with h5py.File(incomplete, "w") as f:
        f.create_dataset("image_list", data=np.array(paths, dtype="S"))
    with pytest.raises(InputError, match="incomplete.h5: filter file has no .*distance_to_center"):
        read_filter_file(incomplete)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match="junk.h5: cannot read filter file"):
        read_filter_file(tmp_path / "junk.h5")
