"""The pure parts of using a model: distances, thresholds, the split, the classifier file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from facenet_cli.errors import InputError
from facenet_cli.evaluate.metrics import distance
from facenet_cli.models.sidecar import ModelInfo, read_model_info, with_threshold, write_model_info
from facenet_cli.train.settings import with_alignment
from facenet_cli.use.faces import model_alignment
from facenet_cli.use.people_classifier import (
    UNKNOWN,
    fit_classifier,
    load_classifier,
    save_classifier,
    split_dataset,
)
from facenet_cli.use.store import EmbeddingSet, read_embeddings, write_embeddings
from facenet_cli.use.threshold import (
    choose_gallery_threshold,
    gallery_threshold,
    resolve_threshold,
)
from facenet_cli.use.verify import cross_distances, distance_matrix, verdicts
from facenet_cli.use.whitening import can_whiten, fit_whitening, whiten

INFO = ModelInfo("small", 8, 40, "per_image")


def clusters(n_people: int, per_person: int, spread: float, seed: int = 0):
    """Unit vectors around one random centre per person."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 16))
    x = np.repeat(centres, per_person, axis=0) + rng.normal(0, spread, (n_people * per_person, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(n_people), per_person)


@pytest.mark.parametrize("metric", [0, 1])
def test_distance_matrix_equals_the_protocols_row_distance(metric: int) -> None:
    x, _ = clusters(3, 3, 0.3)
    d = distance_matrix(x, metric)
    i, j = np.triu_indices(len(x), 1)
    np.testing.assert_allclose(d[i, j], distance(x[i], x[j], metric), atol=1e-5)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert verdicts(np.array([0.5, 1.0]), 1.0).tolist() == [True, False]  # strictly below


def test_threshold_resolution_prefers_the_flag_then_the_sidecar() -> None:
    assert resolve_threshold(INFO, None, None) == (None, 0)
    recorded = with_threshold(INFO, 1.1, 0, "10-fold")
    chosen, metric = resolve_threshold(recorded, None, None)
    assert chosen is not None and chosen.value == 1.1 and metric == 0
    assert "10-fold" in chosen.source
    assert resolve_threshold(recorded, None, 1) == (None, 1)  # other metric: no verdicts
    flag, _ = resolve_threshold(recorded, 0.7, None)
    assert flag is not None and (flag.value, flag.source) == (0.7, "--threshold")


def test_gallery_threshold_separates_own_from_other_people() -> None:
    x, y = clusters(6, 5, 0.1)
    fitted = gallery_threshold(x, y, 0)
    assert fitted is not None
    t = fitted.value
    d = distance_matrix(x, 0)
    np.fill_diagonal(d, np.inf)
    same = y[:, None] == y[None, :]
    assert np.all(np.where(same, d, np.inf).min(1) < t)  # every photo finds its own person
    assert np.all(np.where(~same, d, np.inf).min(1) >= t)  # and nobody else
    assert gallery_threshold(x[:5], y[:5], 0) is None  # one person: nobody else to reject
    assert gallery_threshold(x[::5], y[::5], 0) is None  # one photo each: no genuine match


def test_gallery_threshold_takes_the_middle_of_a_gap_and_honours_a_known_floor() -> None:
    # Separated sides: the middle of the gap, not its lower edge.
    gap = choose_gallery_threshold(np.array([0.1, 0.15, 0.2]), np.array([1.0, 1.2]))
    assert gap.value == pytest.approx(0.6, abs=0.011)
    assert (gap.known_accepted, gap.strangers_rejected) == (1.0, 1.0)
    # Overlapping sides: balanced by default; a floor on the known side moves the threshold up
    # until that share of own-person matches is accepted, at the strangers' expense.
    rng = np.random.default_rng(0)
    own, other = rng.normal(0.5, 0.15, 400), rng.normal(1.0, 0.15, 400)
    balanced = choose_gallery_threshold(own, other)
    assert 0.65 < balanced.value < 0.85
    floor = choose_gallery_threshold(own, other, known_rate=0.99)
    assert floor.value > balanced.value
    assert floor.known_accepted >= 0.99 > balanced.known_accepted
    assert floor.strangers_rejected < balanced.strangers_rejected
    # The expected rates are the shares of each side on the right side of the threshold.
    assert floor.known_accepted == pytest.approx(np.mean(own < floor.value))
    assert floor.strangers_rejected == pytest.approx(np.mean(other >= floor.value))


def test_sidecar_keeps_threshold_and_alignment_and_old_files_still_load(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"model_def": "small", "embedding_size": 8, "image_size": 40,
                                "standardization": "per_image"}))  # fmt: skip
    old = read_model_info(path)
    assert old.threshold is None and old.align_margin is None
    journal = tmp_path / "aligned" / ".align-journal.jsonl"
    journal.parent.mkdir()
    journal.write_text(json.dumps({"settings": {"image_size": 48, "margin": 6, "mode": "crop"}}))
    info = with_threshold(with_alignment(old, journal.parent), 0.9, 1, "2-fold on x")
    write_model_info(path, info)
    assert read_model_info(path) == info
    assert model_alignment(info).margin == 6 and model_alignment(info).image_size == 48
    assert model_alignment(old).source == "default"
    with pytest.raises(InputError, match="threshold_metric"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "threshold_metric": None}))
        read_model_info(path)


def test_split_dataset_keeps_per_person_counts() -> None:
    labels = np.array([0] * 6 + [1] * 3 + [2] * 8)
    split = split_dataset(labels, min_nrof_images_per_class=4, nrof_train_images_per_class=2)
    assert split.nrof_classes_dropped == 1
    assert np.bincount(labels[split.train], minlength=3).tolist() == [2, 0, 2]
    assert np.bincount(labels[split.test], minlength=3).tolist() == [4, 0, 6]
    assert not set(split.train) & set(split.test)


def test_classifier_round_trip_names_known_and_rejects_strangers(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    x, y = clusters(8, 6, 0.15)
    known = y < 5
    clf = fit_classifier(
        x[known], y[known], [f"p{i}" for i in range(8)],
        distance_threshold=gallery_threshold(x[known], y[known], 0).value, distance_metric=0,
        min_probability=0.0,
    )  # fmt: skip
    reference = LogisticRegression(C=100.0, max_iter=2000, random_state=666).fit(x[known], y[known])
    np.testing.assert_allclose(clf.probabilities(x), reference.predict_proba(x), atol=1e-6)
    loaded = load_classifier(save_classifier(tmp_path / "clf.npz", clf))
    assert loaded.class_names == ("p0", "p1", "p2", "p3", "p4")
    # Other photos of the same eight people (the same centres, new noise).
    fresh = clusters(8, 10, 0.15)[0][[k * 10 + 7 for k in range(8)]]
    names = [p.name for p in loaded.predict(fresh)]
    assert names[:5] == ["p0", "p1", "p2", "p3", "p4"]
    assert names[5:] == [UNKNOWN] * 3


def test_two_people_and_probability_rule(tmp_path: Path) -> None:
    x, y = clusters(2, 5, 0.1)
    clf = fit_classifier(x, y, ["a", "b"], distance_threshold=None, distance_metric=0,
                         min_probability=0.999999)  # fmt: skip
    loaded = load_classifier(save_classifier(tmp_path / "c.npz", clf))
    assert loaded.coef.shape[0] == 1
    preds = loaded.predict(x)
    assert all(p.nearest == ["a", "b"][int(t)] for p, t in zip(preds, y, strict=True))
    assert any(p.name == UNKNOWN and "probability" in (p.reason or "") for p in preds)


@pytest.mark.parametrize(
    "make", ["text", "truncated", "foreign_npz", "embeddings_file", "wrong_whitening"]
)
def test_damaged_or_foreign_classifier_is_one_line(tmp_path: Path, make: str) -> None:
    path = tmp_path / "clf.npz"
    x, y = clusters(3, 3, 0.1)
    if make == "text":
        path.write_text("hello")
    elif make == "truncated":
        clf = fit_classifier(x, y, ["a", "b", "c"], distance_threshold=1.0, distance_metric=0,
                             min_probability=0.0)  # fmt: skip
        data = save_classifier(path, clf).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif make == "foreign_npz":
        np.savez(path, weights=np.zeros(3))
    elif make == "wrong_whitening":
        clf = fit_classifier(x, y, ["a", "b", "c"], distance_threshold=1.0, distance_metric=0,
                             min_probability=0.0)  # fmt: skip
        save_classifier(path, dataclasses.replace(clf, whitening=np.eye(3)))
    else:
        write_embeddings(path, EmbeddingSet(x, np.array(["a"] * 9), y, np.array(["a", "b", "c"]),
                                            np.array(["1:1"] * 9)))  # fmt: skip
    with pytest.raises(InputError) as info:
        load_classifier(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_embeddings_file_round_trip(tmp_path: Path) -> None:
    x, y = clusters(2, 2, 0.1)
    data = EmbeddingSet(x, np.array(["a/1.png", "a/2.png", "b/1.png", "b/2.png"]), y,
                        np.array(["a", "b"]), np.array(["1:2"] * 4), {"k": 1})  # fmt: skip
    back = read_embeddings(write_embeddings(tmp_path / "e.npz", data))
    np.testing.assert_array_equal(back.embeddings, x)
    assert back.paths.tolist() == data.paths.tolist() and back.meta["k"] == 1
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def nuisance_clusters(n_people: int, per_person: int, photos: int = 0):
    """Unit vectors in 16 dimensions whose photos of one person vary mostly along two shared
    nuisance axes (pose and lighting, say), far more than the people differ along them.
    ``photos`` seeds the photos: another value, other photos of the same people."""
    centres = np.random.default_rng(0).normal(0, 0.2, (n_people, 16))
    rng = np.random.default_rng(100 + photos)
    noise = rng.normal(0, 0.03, (n_people * per_person, 16))
    noise[:, :2] = rng.normal(0, 2.0, (n_people * per_person, 2))
    x = np.repeat(centres, per_person, axis=0) + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, np.repeat(np.arange(n_people), per_person)


def _separation(x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of photos whose nearest other photo is of the same person."""
    d = distance_matrix(x, 0)
    np.fill_diagonal(d, np.inf)
    return float(np.mean(y[np.argmin(d, axis=1)] == y))


def test_whitening_discounts_how_one_persons_photos_vary() -> None:
    x, y = nuisance_clusters(12, 6)
    matrix = fit_whitening(x, y)
    assert matrix is not None and matrix.shape == (16, 16)
    white = whiten(x, matrix)
    np.testing.assert_allclose(np.linalg.norm(white, axis=1), 1.0)
    assert _separation(x, y) < 0.6 and _separation(white, y) > 0.95
    # Fewer photos beyond the first of each person than dimensions: not worth whitening.
    assert not can_whiten(y[:18], 16) and can_whiten(y[:24], 16)  # 15 and 20 differences
    assert fit_whitening(x[::6], y[::6]) is None  # one photo each: nothing to learn from
    assert whiten(x[:2], None) is not None and np.array_equal(whiten(x[:2], None), x[:2])


def test_whitened_gallery_threshold_is_cross_validated_and_names_strangers() -> None:
    x, y = nuisance_clusters(12, 6)
    known = y < 8
    fitted = gallery_threshold(x[known], y[known], 0, whitened=True)
    fitted_plain = gallery_threshold(x[known], y[known], 0)
    assert fitted is not None and fitted_plain is not None
    t, plain = fitted.value, fitted_plain.value
    clf = fit_classifier(x[known], y[known], [f"p{i}" for i in range(12)], distance_threshold=t,
                         distance_metric=0, min_probability=0.0, whitened=True)  # fmt: skip
    assert clf.whitening is not None
    # New photos of everyone: the known come out by name, the four strangers as unknown.
    fresh, fy = nuisance_clusters(12, 6, photos=1)
    truth = np.array([f"p{i}" for i in fy[fy < 8]])

    def rates(names: np.ndarray) -> tuple[float, float]:
        return float(np.mean(names[fy < 8] == truth)), float(np.mean(names[fy >= 8] == UNKNOWN))

    named, rejected = rates(np.array([p.name for p in clf.predict(fresh)]))
    assert named > 0.9 and rejected > 0.9
    # The plain classifier with its own threshold confuses people along the nuisance axes.
    flat = fit_classifier(
        x[known], y[known], [f"p{i}" for i in range(12)],
        distance_threshold=plain, distance_metric=0, min_probability=0.0,
    )  # fmt: skip
    flat_named, flat_rejected = rates(np.array([p.name for p in flat.predict(fresh)]))
    assert flat_named + flat_rejected < 1.5


def test_whitened_classifier_round_trip(tmp_path: Path) -> None:
    x, y = nuisance_clusters(5, 5)
    clf = fit_classifier(x, y, list("abcde"), distance_threshold=0.5, distance_metric=0,
                         min_probability=0.0, whitened=True)  # fmt: skip
    loaded = load_classifier(save_classifier(tmp_path / "w.npz", clf))
    assert loaded.whitening is not None
    np.testing.assert_allclose(loaded.whitening, clf.whitening)
    np.testing.assert_allclose(loaded.probabilities(x), clf.probabilities(x))
    d = loaded.nearest_distances(x)
    expected = cross_distances(whiten(x, clf.whitening), whiten(x, clf.whitening), 0)
    np.testing.assert_allclose(d[np.arange(len(y)), y], 0.0, atol=1e-9)
    assert np.allclose(d[0, 1], expected[0, y == 1].min())


def test_identities_in_folders_one_level_too_deep_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from facenet_cli.use.face_embedding import list_identities

    for person in ("ann", "bob"):
        (tmp_path / person).mkdir()
        (tmp_path / person / "1.png").write_bytes(b"\x89PNG")
    (tmp_path / "cid" / "2019").mkdir(parents=True)
    (tmp_path / "cid" / "2019" / "1.png").write_bytes(b"\x89PNG")
    paths, labels, names = list_identities(tmp_path)
    assert names == ["ann", "bob"] and labels.tolist() == [0, 1] and len(paths) == 2
    err = capsys.readouterr().err
    assert "1 folder(s) inside the class folders were not read" in err
    assert str(tmp_path / "cid" / "2019") in err
