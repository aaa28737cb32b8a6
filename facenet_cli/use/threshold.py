"""The verification threshold: chosen and resolved for ``compare`` and ``classify``.

Evaluation records the accuracy-maximising threshold of its folds in the model's sidecar
(:mod:`facenet_cli.evaluate.record`); here it is read back, overridden by ``--threshold``, or
calibrated on a gallery for open-set naming. Pure NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facenet_cli.evaluate.metrics import ACCURACY_THRESHOLDS, metric_id, roc_at
from facenet_cli.models.sidecar import ModelInfo
from facenet_cli.use.verify import cross_distances

METRIC_NAMES = {0: "squared euclidean", 1: "angular"}
# Folds of the whitened gallery calibration (each person's k-th photo in fold k % 5).
GALLERY_FOLDS = 5


@dataclass(frozen=True)
class Threshold:
    """A distance threshold: pairs strictly below it are the same person.

    Attributes:
        value: the threshold.
        metric: 0 (squared Euclidean) or 1 (angular).
        source: where it comes from (``--threshold``, ``model.json (...)``, ``training pairs``).
    """

    value: float
    metric: int
    source: str

    def to_dict(self) -> dict[str, object]:
        return {"value": self.value, "metric": METRIC_NAMES[self.metric], "source": self.source}


def model_threshold(info: ModelInfo) -> Threshold | None:
    """The threshold recorded in the sidecar, if any."""
    if info.threshold is None or info.threshold_metric is None:
        return None
    source = "model.json" + (f": {info.threshold_protocol}" if info.threshold_protocol else "")
    return Threshold(float(info.threshold), int(info.threshold_metric), source)


def resolve_threshold(
    info: ModelInfo, override: float | None, metric: int | str | None
) -> tuple[Threshold | None, int]:
    """The threshold to judge pairs with and the metric to measure distances in.

    ``--threshold`` wins; otherwise the sidecar's, in its own metric unless another metric is
    asked for (a threshold of one metric means nothing in the other).

    Returns:
        ``(threshold or None, metric)``.
    """
    recorded = model_threshold(info)
    wanted = metric_id(metric) if metric is not None else None
    if override is not None:
        chosen = wanted if wanted is not None else (recorded.metric if recorded else 0)
        return Threshold(float(override), chosen, "--threshold"), chosen
    if recorded is not None and (wanted is None or wanted == recorded.metric):
        return recorded, recorded.metric
    return None, wanted if wanted is not None else 0


@dataclass(frozen=True)
class GalleryCalibration:
    """An open-set threshold and what the calibration expects of it.

    Attributes:
        value: the distance threshold (a face at least this far from its person is unknown).
        known_accepted: share of the held-out training photos that find their own person below
            it.
        strangers_rejected: share of those photos whose nearest other person is at or beyond
            it (what a stranger would find).
    """

    value: float
    known_accepted: float
    strangers_rejected: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "known_accepted": round(self.known_accepted, 4),
                "strangers_rejected": round(self.strangers_rejected, 4)}  # fmt: skip


def gallery_threshold(
    embeddings: np.ndarray,
    labels: np.ndarray,
    distance_metric: int = 0,
    *,
    whitened: bool = False,
    folds: int = GALLERY_FOLDS,
    known_rate: float = 0.0,
) -> GalleryCalibration | None:
    """The distance threshold for naming a face by its nearest photo in a gallery.

    A pair threshold (``model.json``'s) judges one pair; a gallery of N photos gives a stranger
    N chances to fall below it, so the open-set threshold is calibrated on the gallery itself:
    a held-out photo's nearest photo of the same person is a genuine match, its nearest photo of
    anyone else what a stranger would find. :func:`choose_gallery_threshold` then picks the
    threshold (``"same" iff distance < threshold``, on the protocol's grid).

    Plain embeddings leave each photo out in turn. With ``whitened`` the distances are measured
    after :func:`~facenet_cli.use.whitening.fit_whitening`, and the transform must not have seen
    the photo it judges (a photo inside the covariance sits unduly near its own person), so the
    gallery is cut into ``folds`` (each person's k-th photo goes to fold ``k % folds``) and each
    fold is judged against a whitening fitted on the others.

    Returns:
        The threshold, or None without a person with two photos and a second person.
    """
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    if len(labels) < 3 or len(np.unique(labels)) < 2:
        return None
    if whitened:
        own, other = _cross_validated_nearest(x, labels, distance_metric, folds)
    else:
        d = cross_distances(x, x, distance_metric, symmetric=True)
        np.fill_diagonal(d, np.inf)
        own, other = _nearest_own_and_other(d, labels[:, None] == labels[None, :])
    own, other = own[np.isfinite(own)], other[np.isfinite(other)]
    if own.size == 0 or other.size == 0:
        return None
    return choose_gallery_threshold(own, other, known_rate)


def choose_gallery_threshold(
    own: np.ndarray, other: np.ndarray, known_rate: float = 0.0
) -> GalleryCalibration:
    """The threshold that best separates the genuine distances ``own`` from the strangers'
    ``other`` (balanced accuracy), among those that accept at least ``known_rate`` of ``own``.

    Several thresholds of equal balanced accuracy (a gap between the two sides) give the middle
    of the first such run, away from both sides' nearest samples rather than on the edge of one.

    The default floor of 0 sets the two error rates about equal. A floor trades strangers for
    known people, steeply where the embeddings separate people poorly (BENCHMARKS.md, open-set
    threshold).
    """
    own, other = np.asarray(own, np.float64), np.asarray(other, np.float64)
    dist = np.concatenate([own, other])
    genuine = np.concatenate([np.ones(own.size, bool), np.zeros(other.size, bool)])
    tpr, fpr, _ = roc_at(dist, genuine, ACCURACY_THRESHOLDS)
    score = np.where(tpr >= known_rate - 1e-9, tpr - fpr, -np.inf)
    best = np.flatnonzero(score >= score.max() - 1e-9)
    gaps = np.flatnonzero(np.diff(best) > 1)
    run = best[: gaps[0] + 1] if gaps.size else best
    k = int(run[(len(run) - 1) // 2])
    return GalleryCalibration(float(ACCURACY_THRESHOLDS[k]), float(tpr[k]), float(1.0 - fpr[k]))


def _nearest_own_and_other(d: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the distance to the nearest column of the same person, and of anyone else."""
    return np.where(same, d, np.inf).min(axis=1), np.where(~same, d, np.inf).min(axis=1)


def _cross_validated_nearest(
    x: np.ndarray, labels: np.ndarray, distance_metric: int, folds: int
) -> tuple[np.ndarray, np.ndarray]:
    from facenet_cli.use.whitening import fit_whitening, whiten

    rank = np.zeros(len(labels), np.int64)
    for person in np.unique(labels):
        rows = np.flatnonzero(labels == person)
        rank[rows] = np.arange(len(rows))
    own: list[np.ndarray] = []
    other: list[np.ndarray] = []
    for fold in range(folds):
        out = rank % folds == fold
        if not out.any() or out.all():
            continue
        rest = ~out
        matrix = fit_whitening(x[rest], labels[rest])
        d = cross_distances(whiten(x[out], matrix), whiten(x[rest], matrix), distance_metric)
        o, t = _nearest_own_and_other(d, labels[out][:, None] == labels[rest][None, :])
        own.append(o)
        other.append(t)
    if not own:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(own), np.concatenate(other)
