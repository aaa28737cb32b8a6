"""The LFW verification protocol in pure NumPy: folds, ROC, accuracy, VAL@FAR, AUC and EER.

Semantics are the original FaceNet recipe's (``lfw.evaluate`` with ``facenet.calculate_roc`` and
``facenet.calculate_val``):

* folds are contiguous and unshuffled (scikit-learn's ``KFold(shuffle=False)`` split), so with the
  official pairs file they equal the official splits;
* a pair is predicted "same" iff its distance is strictly below the threshold;
* accuracy: on the training folds, sweep ``0.00, 0.01, ..., 3.99`` and keep the FIRST threshold of
  maximal accuracy; report the test-fold accuracy at it (mean and population std over folds);
* VAL@FAR: on the training folds, the threshold giving the target FAR is found by linear
  interpolation of threshold against FAR over ``0.000, 0.001, ..., 3.999``; report the test-fold
  VAL and FAR at it;
* with ``subtract_mean``, each fold subtracts the mean embedding of its training folds;
* the ROC is the mean over folds of the test-fold ROC on the accuracy grid.

Where the original breaks, this module gives the value it meant: duplicate FAR values on the grid
(always present: FAR is 0 at several small thresholds) are handled as the SciPy of its time handled
them - the largest threshold of a run of equal FARs - rather than raising; a FAR target the
training folds never reach is reported per fold (``far_reachable``) and left out of VAL instead of
silently using a threshold of 0; the EER is where the ROC polyline, closed at (1, 1), crosses
FPR = 1 - TPR, so it never fails; cosine similarities are clipped to [-1, 1] before ``arccos``.

Counting is vectorised over thresholds (sorted distances and ``searchsorted``), so results are
bit-identical to the threshold-by-threshold loop of the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The original's grids. Built exactly as it built them: the threshold values are compared with
# distances, so they must be the same floats.
ACCURACY_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)

_METRIC_NAMES = {"euclidean": 0, "squared_euclidean": 0, "cosine": 1, "angular": 1}


def metric_id(distance_metric: int | str) -> int:
    """Normalise a distance metric: 0 / "euclidean" (squared), 1 / "cosine" (angular).

    Raises:
        ValueError: an unknown metric.
    """
    if isinstance(distance_metric, str):
        key = distance_metric.strip().lower()
        if key in _METRIC_NAMES:
            return _METRIC_NAMES[key]
        if key in ("0", "1"):
            return int(key)
    elif isinstance(distance_metric, int | np.integer) and int(distance_metric) in (0, 1):
        return int(distance_metric)
    raise ValueError(
        f"unknown distance metric {distance_metric!r}; use 0 / 'euclidean' or 1 / 'cosine'"
    )


def distance(
    embeddings1: np.ndarray, embeddings2: np.ndarray, distance_metric: int | str = 0
) -> np.ndarray:
    """Row-wise distance between two embedding arrays.

    Args:
        embeddings1: (N, D) array.
        embeddings2: (N, D) array.
        distance_metric: 0 / "euclidean" for the squared Euclidean distance, 1 / "cosine" for
            ``arccos(cosine similarity) / pi`` (in [0, 1]).

    Returns:
        (N,) float array.
    """
    metric = metric_id(distance_metric)
    if metric == 0:
        diff = np.subtract(embeddings1, embeddings2)
        return np.sum(np.square(diff), 1)
    dot = np.sum(np.multiply(embeddings1, embeddings2), axis=1)
    norm = np.linalg.norm(embeddings1, axis=1) * np.linalg.norm(embeddings2, axis=1)
    # Rounding puts the similarity of (nearly) identical vectors a hair above 1, where arccos is
    # NaN; clipping changes nothing for values already in range.
    similarity = np.clip(dot / norm, -1.0, 1.0)
    return np.arccos(similarity) / math.pi


def fold_indices(nrof_pairs: int, nrof_folds: int) -> list[np.ndarray]:
    """Contiguous, unshuffled test folds (the first ``nrof_pairs % nrof_folds`` one longer).

    Raises:
        ValueError: fewer than 2 folds, or more folds than pairs.
    """
    if nrof_folds < 2:
        raise ValueError(f"need at least 2 folds, got {nrof_folds}")
    if nrof_folds > nrof_pairs:
        raise ValueError(f"cannot split {nrof_pairs} pairs into {nrof_folds} folds")
    return np.array_split(np.arange(nrof_pairs), nrof_folds)


def count_below(
    dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every threshold, how many same / different pairs have a distance strictly below it.

    Returns:
        ``(true_accepts, false_accepts)``, int arrays shaped like ``thresholds``.
    """
    same = np.sort(dist[issame])
    diff = np.sort(dist[~issame])
    # side="left" counts the elements < t: exactly np.less(dist, t).
    return (
        np.searchsorted(same, thresholds, side="left"),
        np.searchsorted(diff, thresholds, side="left"),
    )


def roc_at(
    dist: np.ndarray, issame: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TPR, FPR and accuracy at every threshold ("same" iff distance < threshold).

    A rate whose denominator is empty is 0, as in the original.
    """
    issame = np.asarray(issame, dtype=bool)
    tp, fp = count_below(dist, issame, thresholds)
    n_same = int(np.count_nonzero(issame))
    n_diff = issame.size - n_same
    tn = n_diff - fp
    tpr = tp / n_same if n_same else np.zeros(len(thresholds))
    fpr = fp / n_diff if n_diff else np.zeros(len(thresholds))
    acc = (tp + tn) / dist.size
    return tpr, fpr, acc


def interpolate_threshold(far: np.ndarray, thresholds: np.ndarray, far_target: float) -> float:
    """The threshold at which the non-decreasing FAR curve reaches ``far_target``, linearly.

    Runs of equal FAR values resolve to their largest threshold, which is what the original's
    ``interp1d(far, thresholds, kind="slinear")`` returned before SciPy began to reject
    duplicates. Returns NaN when the target is out of the curve's range.
    """
    if not far.size or far_target > far[-1] or far_target < far[0]:
        return math.nan
    return float(np.interp(far_target, far, thresholds))


def val_far_at(dist: np.ndarray, issame: np.ndarray, threshold: float) -> tuple[float, float]:
    """Validation rate (TAR) and false accept rate at one threshold (NaN for an empty class)."""
    predict = dist < threshold
    n_same = int(np.count_nonzero(issame))
    n_diff = issame.size - n_same
    val = np.count_nonzero(predict & issame) / n_same if n_same else math.nan
    far = np.count_nonzero(predict & ~issame) / n_diff if n_diff else math.nan
    return float(val), float(far)


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Trapezoidal area under an ROC ordered by threshold, closed at (0, 0) and (1, 1).

    The closing points add nothing when the curve already reaches them; when the threshold grid
    stops short of FPR = 1 they add the segment every larger threshold would trace.
    """
    x = np.concatenate(([0.0], fpr, [1.0]))
    y = np.concatenate(([0.0], tpr, [1.0]))
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1])) / 2.0)


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Where the ROC polyline (closed at (0, 0) and (1, 1)) crosses FPR = 1 - TPR.

    ``fpr + tpr - 1`` is non-decreasing along the curve, from -1 to 1, so a crossing always
    exists; on a vertical stretch of the curve (equal FPRs) the crossing is that FPR.
    """
    x = np.concatenate(([0.0], fpr, [1.0]))
    y = np.concatenate(([0.0], tpr, [1.0]))
    g = x + y - 1.0
    i = int(np.argmax(g >= 0.0))  # first point on or past the diagonal
    if i == 0 or g[i] == 0.0:
        return float(x[i])
    # Between points i-1 and i, solve x + y = 1 on the segment.
    t = -g[i - 1] / (g[i] - g[i - 1])
    return float(x[i - 1] + t * (x[i] - x[i - 1]))


@dataclass(frozen=True)
class EvaluationResult:
    """Per-fold and summary figures of the verification protocol.

    Attributes:
        accuracy: test-fold accuracy per fold.
        best_thresholds: per fold, the first training-fold threshold of maximal accuracy.
        val: test-fold validation rate per fold (NaN where the FAR target was unreachable).
        far: test-fold false accept rate per fold (NaN where unreachable).
        val_thresholds: per fold, the interpolated threshold for the FAR target (NaN where the
            training folds never reach it).
        far_reachable: per fold, whether the training folds reach the FAR target.
        thresholds: the accuracy / ROC grid.
        tpr: mean test-fold true positive rate on ``thresholds``.
        fpr: mean test-fold false positive rate on ``thresholds``.
        far_target: the requested FAR.
        nrof_pairs: pairs evaluated.
        distance_metric: 0 (squared Euclidean) or 1 (angular).
    """

    accuracy: np.ndarray
    best_thresholds: np.ndarray
    val: np.ndarray
    far: np.ndarray
    val_thresholds: np.ndarray
    far_reachable: np.ndarray
    thresholds: np.ndarray
    tpr: np.ndarray
    fpr: np.ndarray
    far_target: float
    nrof_pairs: int
    distance_metric: int
    _cache: dict[str, float] = field(default_factory=dict, repr=False, compare=False)

    @property
    def nrof_folds(self) -> int:
        return int(self.accuracy.size)

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean(self.accuracy))

    @property
    def accuracy_std(self) -> float:
        """Population standard deviation over folds (``np.std``), as the original prints."""
        return float(np.std(self.accuracy))

    @property
    def threshold(self) -> float:
        """Mean over folds of the best accuracy threshold."""
        return float(np.mean(self.best_thresholds))

    @property
    def threshold_std(self) -> float:
        return float(np.std(self.best_thresholds))

    @property
    def nrof_unreachable_folds(self) -> int:
        return int(np.count_nonzero(~self.far_reachable))

    @property
    def val_mean(self) -> float:
        """Mean VAL over the folds that reach the FAR target (NaN if none does)."""
        return _mean_of(self.val[self.far_reachable])

    @property
    def val_std(self) -> float:
        v = self.val[self.far_reachable]
        v = v[~np.isnan(v)]
        return float(np.std(v)) if v.size else math.nan

    @property
    def far_mean(self) -> float:
        return _mean_of(self.far[self.far_reachable])

    @property
    def auc(self) -> float:
        if "auc" not in self._cache:
            self._cache["auc"] = auc(self.fpr, self.tpr)
        return self._cache["auc"]

    @property
    def eer(self) -> float:
        if "eer" not in self._cache:
            self._cache["eer"] = equal_error_rate(self.fpr, self.tpr)
        return self._cache["eer"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-fold figures (NaN becomes None)."""
        return {
            "nrof_pairs": self.nrof_pairs,
            "nrof_folds": self.nrof_folds,
            "distance_metric": self.distance_metric,
            "accuracy": finite_or_none(self.accuracy_mean),
            "accuracy_std": finite_or_none(self.accuracy_std),
            "threshold": finite_or_none(self.threshold),
            "threshold_std": finite_or_none(self.threshold_std),
            "val": finite_or_none(self.val_mean),
            "val_std": finite_or_none(self.val_std),
            "far": finite_or_none(self.far_mean),
            "far_target": self.far_target,
            "far_unreachable_folds": self.nrof_unreachable_folds,
            "auc": finite_or_none(self.auc),
            "eer": finite_or_none(self.eer),
            "folds": {
                "accuracy": [finite_or_none(v) for v in self.accuracy],
                "threshold": [finite_or_none(v) for v in self.best_thresholds],
                "val": [finite_or_none(v) for v in self.val],
                "far": [finite_or_none(v) for v in self.far],
                "val_threshold": [finite_or_none(v) for v in self.val_thresholds],
            },
        }


def _mean_of(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(np.mean(values)) if values.size else math.nan


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def evaluate(
    embeddings1: np.ndarray,
    embeddings2: np.ndarray,
    actual_issame: np.ndarray,
    nrof_folds: int = 10,
    distance_metric: int | str = 0,
    subtract_mean: bool = False,
    far_target: float = 1e-3,
    *,
    thresholds: np.ndarray | None = None,
    val_thresholds: np.ndarray | None = None,
) -> EvaluationResult:
    """Run the LFW protocol on paired embeddings.

    Args:
        embeddings1: (N, D) embeddings of the first image of each pair.
        embeddings2: (N, D) embeddings of the second image of each pair.
        actual_issame: (N,) bools, True for a matched pair.
        nrof_folds: number of contiguous folds (10 for LFW).
        distance_metric: 0 / "euclidean" (squared) or 1 / "cosine" (angular, arccos / pi).
        subtract_mean: per fold, subtract the training folds' mean embedding first.
        far_target: the false accept rate at which VAL is reported.
        thresholds: accuracy / ROC grid; default the original's ``0.00 .. 3.99``.
        val_thresholds: VAL grid; default the original's ``0.000 .. 3.999``.

    Returns:
        An :class:`EvaluationResult`.

    Raises:
        ValueError: mismatched shapes, an unknown metric, or more folds than pairs.
    """
    embeddings1 = np.asarray(embeddings1)
    embeddings2 = np.asarray(embeddings2)
    if embeddings1.ndim != 2 or embeddings1.shape != embeddings2.shape:
        raise ValueError(
            f"embeddings must be two (N, D) arrays of one shape, got {embeddings1.shape} and "
            f"{embeddings2.shape}"
        )
    metric = metric_id(distance_metric)
    acc_grid = ACCURACY_THRESHOLDS if thresholds is None else np.asarray(thresholds, float)
    val_grid = VAL_THRESHOLDS if val_thresholds is None else np.asarray(val_thresholds, float)
    issame_all = np.asarray(actual_issame, dtype=bool)
    nrof_pairs = min(issame_all.size, embeddings1.shape[0])
    folds = fold_indices(nrof_pairs, nrof_folds)
    embeddings1 = embeddings1[:nrof_pairs]
    embeddings2 = embeddings2[:nrof_pairs]
    issame_all = issame_all[:nrof_pairs]

    tprs = np.zeros((nrof_folds, acc_grid.size))
    fprs = np.zeros((nrof_folds, acc_grid.size))
    accuracy = np.zeros(nrof_folds)
    best = np.zeros(nrof_folds)
    val = np.full(nrof_folds, math.nan)
    far = np.full(nrof_folds, math.nan)
    val_thr = np.full(nrof_folds, math.nan)
    reachable = np.zeros(nrof_folds, dtype=bool)

    shared_dist = None if subtract_mean else distance(embeddings1, embeddings2, metric)
    for k, test in enumerate(folds):
        train_mask = np.ones(nrof_pairs, dtype=bool)
        train_mask[test] = False
        if shared_dist is None:
            # The training folds are the rows around the contiguous test fold. Concatenating
            # views in that order sums the same rows in the same order as the original's
            # fancy-indexed copy (bit-identical mean), with one copy instead of three.
            lo, hi = int(test[0]), int(test[-1]) + 1
            rows = [embeddings1[:lo], embeddings1[hi:], embeddings2[:lo], embeddings2[hi:]]
            mean = np.mean(np.concatenate(rows), axis=0)
            dist = distance(embeddings1 - mean, embeddings2 - mean, metric)
        else:
            dist = shared_dist
        d_train, s_train = dist[train_mask], issame_all[train_mask]
        d_test, s_test = dist[test], issame_all[test]

        _, _, acc_train = roc_at(d_train, s_train, acc_grid)
        best_index = int(np.argmax(acc_train))
        best[k] = acc_grid[best_index]
        tprs[k], fprs[k], acc_test = roc_at(d_test, s_test, acc_grid)
        accuracy[k] = acc_test[best_index]

        _, far_train, _ = roc_at(d_train, s_train, val_grid)
        threshold = interpolate_threshold(far_train, val_grid, far_target)
        if not math.isnan(threshold):
            reachable[k] = True
            val_thr[k] = threshold
            val[k], far[k] = val_far_at(d_test, s_test, threshold)

    return EvaluationResult(
        accuracy=accuracy,
        best_thresholds=best,
        val=val,
        far=far,
        val_thresholds=val_thr,
        far_reachable=reachable,
        thresholds=acc_grid,
        tpr=np.mean(tprs, 0),
        fpr=np.mean(fprs, 0),
        far_target=float(far_target),
        nrof_pairs=nrof_pairs,
        distance_metric=metric,
    )
