"""The pure-NumPy LFW protocol: hand-computed cases, the loop-based oracle, the fixed defects."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from facenet_cli.evaluate import metrics
from facenet_cli.evaluate.metrics import evaluate
from tests.evaluate import lfw_reference as ref


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def random_pairs(n_pairs: int, dim: int, seed: int, noise: float = 1.2):
    """Unit embeddings where matched pairs are noisy copies: realistic, overlapping classes."""
    rng = np.random.default_rng(seed)
    e1 = unit(rng.normal(size=(n_pairs, dim)))
    other = unit(rng.normal(size=(n_pairs, dim)))
    issame = rng.random(n_pairs) < 0.5
    e2 = np.where(issame[:, None], unit(e1 + noise * unit(rng.normal(size=(n_pairs, dim)))), other)
    return e1, e2, issame


def separable_pairs(n_pairs: int = 200, dim: int = 8):
    """Matched pairs identical, mismatched pairs orthogonal: squared distances exactly 0 and 2."""
    eye = np.eye(dim)
    e1 = np.tile(eye[0], (n_pairs, 1))
    issame = np.arange(n_pairs) % 2 == 0
    e2 = np.where(issame[:, None], eye[0], eye[1])
    return e1, e2, issame


# ------------------------------------------------------------------------------ hand-computed


def test_perfectly_separable():
    e1, e2, issame = separable_pairs()
    r = evaluate(e1, e2, issame)
    assert np.all(r.accuracy == 1.0)
    assert r.accuracy_std == 0.0
    # Distances are 0 (same) and 2 (different): the first perfect threshold is 0.01.
    assert np.all(r.best_thresholds == 0.01)
    assert r.auc == 1.0
    assert r.eer == 0.0
    assert np.all(r.far_reachable)
    # FAR first becomes positive just past 2.0: interpolating to 1e-3 lands in (2.0, 2.001).
    assert np.all((r.val_thresholds > 2.0) & (r.val_thresholds < 2.001))
    assert r.val_mean == 1.0 and r.val_std == 0.0
    # The test fold's different pairs sit at exactly 2.0, not below the threshold's crossing.
    assert r.far_mean == 1.0


def test_all_equal_embeddings():
    e = np.tile(unit(np.ones((1, 4))), (100, 1))
    issame = np.arange(100) % 2 == 0
    r = evaluate(e, e, issame)
    # Every distance is 0: threshold 0 calls all "different", anything larger all "same"; both
    # give 50%, so the first (0.00) is kept.
    assert np.all(r.best_thresholds == 0.0)
    assert np.allclose(r.accuracy, 0.5)
    assert r.auc == pytest.approx(0.5)
    assert r.eer == pytest.approx(0.5)


def test_one_fold_inverted():
    # Ten folds of 20 pairs; in fold 3 the labels are inverted, so the threshold learnt on the
    # other nine folds (which vote for the original labels) gets every pair of fold 3 wrong.
    e1, e2, issame = separable_pairs(n_pairs=200)
    labels = issame.copy()
    labels[60:80] = ~labels[60:80]
    r = evaluate(e1, e2, labels, nrof_folds=10)
    expected = np.ones(10)
    expected[3] = 0.0
    assert np.array_equal(r.accuracy, expected)
    # Folds other than 3 train on 8 clean folds and fold 3: still 160 right vs 20 wrong.
    assert r.accuracy_mean == pytest.approx(0.9)
    assert r.accuracy_std == pytest.approx(0.3)


def test_contiguous_folds_match_kfold():
    from sklearn.model_selection import KFold

    for n, k in [(6000, 10), (37, 10), (10, 3)]:
        ours = metrics.fold_indices(n, k)
        theirs = [test for _, test in KFold(n_splits=k, shuffle=False).split(np.arange(n))]
        assert all(np.array_equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_metric_names_and_errors():
    assert metrics.metric_id("euclidean") == 0
    assert metrics.metric_id("Cosine") == 1
    assert metrics.metric_id(1) == 1
    with pytest.raises(ValueError, match="unknown distance metric"):
        metrics.metric_id(2)
    e1, e2, issame = random_pairs(50, 4, 0)
    with pytest.raises(ValueError, match="folds"):
        evaluate(e1[:5], e2[:5], issame[:5], nrof_folds=10)
    with pytest.raises(ValueError, match="shape"):
        evaluate(e1, e2[:, :3], issame)


# ---------------------------------------------------------------------- the loop-based oracle


@pytest.mark.parametrize("distance_metric", [0, 1])
@pytest.mark.parametrize("subtract_mean", [False, True])
def test_agrees_with_loop_reference(distance_metric, subtract_mean):
    e1, e2, issame = random_pairs(600, 16, seed=10 * distance_metric + subtract_mean)
    if subtract_mean:
        # A common offset that mean subtraction removes; it matters for the cosine metric.
        shift = np.random.default_rng(1).normal(scale=0.3, size=16)
        e1, e2 = e1 + shift, e2 + shift
    want = ref.evaluate(
        e1, e2, issame, distance_metric=distance_metric, subtract_mean=subtract_mean
    )
    got = evaluate(e1, e2, issame, distance_metric=distance_metric, subtract_mean=subtract_mean)
    # Counting is exact, so the figures are identical, not merely close.
    assert np.array_equal(got.accuracy, want["accuracy"])
    assert np.array_equal(got.best_thresholds, want["best_thresholds"])
    assert np.array_equal(got.tpr, want["tpr"])
    assert np.array_equal(got.fpr, want["fpr"])
    assert np.all(got.far_reachable)
    np.testing.assert_allclose(got.val, want["val"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.far, want["far"], rtol=0, atol=1e-12)
    assert got.accuracy_mean == pytest.approx(np.mean(want["accuracy"]), abs=1e-12)
    assert got.accuracy_std == pytest.approx(np.std(want["accuracy"]), abs=1e-12)
    assert got.val_mean == pytest.approx(np.mean(want["val"]), abs=1e-12)
    assert got.val_std == pytest.approx(np.std(want["val"]), abs=1e-12)
    assert got.far_mean == pytest.approx(np.mean(want["far"]), abs=1e-12)
    assert got.auc == pytest.approx(want["auc"], abs=1e-12)
    assert got.eer == pytest.approx(want["eer"], abs=1e-12)
    # Not a degenerate case: the classes overlap.
    assert 0.6 < got.accuracy_mean < 0.99
    assert 0.0 < got.val_mean < 1.0


def test_agrees_with_loop_reference_uneven_folds():
    e1, e2, issame = random_pairs(437, 8, seed=5)
    want = ref.evaluate(e1, e2, issame, nrof_folds=7, far_target=1e-2)
    got = evaluate(e1, e2, issame, nrof_folds=7, far_target=1e-2)
    assert np.array_equal(got.accuracy, want["accuracy"])
    np.testing.assert_allclose(got.val, want["val"], rtol=0, atol=1e-12)
    assert got.eer == pytest.approx(want["eer"], abs=1e-12)


# ---------------------------------------------------------------------------- fixed defects


def test_duplicate_far_values_do_not_crash():
    from scipy import interpolate

    # FAR on the grid is 0 for every threshold below the smallest mismatched distance: the
    # original's interp1d(kind="slinear") raises on those duplicates in current SciPy.
    e1, e2, issame = random_pairs(300, 8, seed=3)
    r = evaluate(e1, e2, issame)
    dist = metrics.distance(e1, e2)
    _, far_train, _ = metrics.roc_at(dist[30:], issame[30:], metrics.VAL_THRESHOLDS)
    assert np.any(np.diff(far_train) == 0)
    with pytest.raises(ValueError):
        interpolate.interp1d(far_train, metrics.VAL_THRESHOLDS, kind="slinear")(1e-3)
    assert np.isfinite(r.val_thresholds[0])
    assert r.val_thresholds[0] == pytest.approx(
        ref.slinear_at(far_train, metrics.VAL_THRESHOLDS, 1e-3), abs=1e-12
    )


def test_interpolation_matches_scipy_without_duplicates():
    from scipy import interpolate

    rng = np.random.default_rng(0)
    far = np.cumsum(rng.random(50))
    far /= far[-1]
    thr = np.linspace(0, 4, 50)
    for target in (far[0], 0.0437, 0.5, far[-1]):
        want = float(interpolate.interp1d(far, thr, kind="slinear")(target))
        assert metrics.interpolate_threshold(far, thr, target) == pytest.approx(want, abs=1e-12)


def test_duplicate_far_exact_hit_takes_last_threshold():
    far = np.array([0.0, 0.0, 0.001, 0.001, 0.001, 0.002])
    thr = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
    assert metrics.interpolate_threshold(far, thr, 0.001) == 0.4
    assert metrics.interpolate_threshold(far, thr, 0.0015) == pytest.approx(0.45)
    assert ref.slinear_at(far, thr, 0.001) == 0.4


def test_unreachable_far_is_reported():
    # Mismatched pairs at squared distance 4 (antipodal) sit above the whole 0..3.999 grid, so
    # no training threshold accepts any of them: FAR 1e-3 cannot be reached.
    eye = np.eye(4)
    n = 100
    issame = np.arange(n) % 2 == 0
    e1 = np.tile(eye[0], (n, 1))
    e2 = np.where(issame[:, None], eye[0], -eye[0])
    r = evaluate(e1, e2, issame)
    assert not np.any(r.far_reachable)
    assert r.nrof_unreachable_folds == 10
    assert math.isnan(r.val_mean) and math.isnan(r.far_mean)
    assert np.all(np.isnan(r.val_thresholds))
    assert r.to_dict()["val"] is None
    # Accuracy is unaffected.
    assert r.accuracy_mean == 1.0


def test_far_target_one_is_reachable():
    e1, e2, issame = random_pairs(400, 8, seed=4)
    r = evaluate(e1, e2, issame, far_target=1.0)
    # Every mismatched distance is below 3.999, so FAR 1 is reached and accepts every pair.
    assert r.nrof_unreachable_folds == 0
    assert r.val_mean == 1.0 and r.far_mean == 1.0


def test_eer_never_fails_when_grid_misses_fpr_one():
    # Squared distances up to 8 (flip-concatenated embeddings): the 0..3.99 grid never reaches
    # FPR 1, where the original's brentq on interp1d(fpr, tpr) raises.
    rng = np.random.default_rng(7)
    n = 400
    issame = np.arange(n) % 2 == 0
    e1 = np.hstack([unit(rng.normal(size=(n, 8)))] * 2)
    e2 = np.where(issame[:, None], e1 + 0.3 * rng.normal(size=(n, 16)), -e1)
    r = evaluate(e1, e2, issame)
    assert r.fpr[-1] < 1.0
    assert 0.0 <= r.eer <= 1.0
    assert r.eer == pytest.approx(ref.eer(r.fpr, r.tpr), abs=1e-12)


def test_eer_on_vertical_segment():
    fpr = np.array([0.0, 0.3, 0.3, 1.0])
    tpr = np.array([0.0, 0.2, 0.9, 1.0])
    assert metrics.equal_error_rate(fpr, tpr) == pytest.approx(0.3)


def test_cosine_clipped():
    e = unit(np.random.default_rng(2).normal(size=(64, 128)))
    # The same vectors scaled: similarity is 1 up to rounding, often a hair above.
    e2 = e * 3.0
    d = metrics.distance(e, e2, 1)
    assert np.all(np.isfinite(d))
    assert np.all(d < 1e-6)
    with np.errstate(invalid="ignore"):
        raw = np.arccos(
            np.sum(e * e2, 1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(e2, axis=1))
        )
    # The unclipped formula is NaN on some rows here, and exactly ours on the others.
    ok = np.isfinite(raw)
    assert not np.all(ok)
    np.testing.assert_array_equal(d[ok], raw[ok] / math.pi)


# ----------------------------------------------------------------------------------------- AUC


def test_auc_equals_sklearn_on_fine_grid():
    e1, e2, issame = random_pairs(1000, 16, seed=11)
    dist = metrics.distance(e1, e2)
    # Thresholds at every distinct distance and beyond: the ROC through every operating point.
    grid = np.concatenate((np.unique(dist), [np.inf]))
    tpr, fpr, _ = metrics.roc_at(dist, issame, grid)
    assert metrics.auc(fpr, tpr) == pytest.approx(roc_auc_score(issame, -dist), abs=1e-12)


def test_auc_with_ties_equals_sklearn():
    rng = np.random.default_rng(12)
    dist = rng.integers(0, 20, 500) / 10.0  # heavy ties
    issame = rng.random(500) < 0.5 + 0.02 * (10 - dist * 5)
    grid = np.concatenate((np.unique(dist), [np.inf]))
    tpr, fpr, _ = metrics.roc_at(dist, issame, grid)
    assert metrics.auc(fpr, tpr) == pytest.approx(roc_auc_score(issame, -dist), abs=1e-12)


def test_evaluate_auc_close_to_sklearn():
    e1, e2, issame = random_pairs(3000, 16, seed=13)
    fine = np.arange(0, 4, 1e-4)
    r = evaluate(e1, e2, issame, thresholds=fine)
    # The mean of ten test-fold ROCs, not one ROC over all pairs: close, not equal.
    assert r.auc == pytest.approx(roc_auc_score(issame, -metrics.distance(e1, e2)), abs=5e-3)


# ----------------------------------------------------------------------------------- plumbing


def test_to_dict():
    e1, e2, issame = random_pairs(300, 8, seed=6)
    r = evaluate(e1, e2, issame, distance_metric="cosine")
    d = r.to_dict()
    assert d["distance_metric"] == 1
    assert d["accuracy"] == pytest.approx(r.accuracy_mean)
    assert len(d["folds"]["accuracy"]) == 10


def test_metrics_module_does_not_import_tensorflow():
    code = (
        "import sys, facenet_cli.evaluate.metrics; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
