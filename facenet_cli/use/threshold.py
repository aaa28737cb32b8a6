"""The verification threshold: recorded in ``model.json`` by evaluation, chosen, resolved.

Evaluation (``facenet validate`` and the training run's LFW evaluation) stores the
accuracy-maximising threshold of its folds, with the distance metric and protocol it belongs to,
in the model's sidecar; ``compare`` and ``classify`` read it back. Pure apart from the sidecar
write in :func:`record_threshold`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facenet_cli.evaluate.metrics import ACCURACY_THRESHOLDS, metric_id, roc_at
from facenet_cli.models.sidecar import SIDECAR_NAME, ModelInfo, with_threshold, write_model_info
from facenet_cli.use.verify import cross_distances

if TYPE_CHECKING:
    from facenet_cli.evaluate.validate import ValidationReport
    from facenet_cli.models.loading import EmbeddingModel

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


def protocol_text(report: ValidationReport) -> str:
    """One line naming what a threshold was measured on."""
    r = report.result
    where = report.pairs_path.name if report.pairs_path is not None else str(report.lfw_dir)
    return (
        f"{r.nrof_folds}-fold verification on {r.nrof_pairs} pairs of {where}, "
        f"accuracy {r.accuracy_mean:.3f}"
    )


def sidecar_of(model: EmbeddingModel) -> Path | None:
    """The ``model.json`` a loaded model was read with (None when it has none on disk)."""
    source = Path(model.source)
    if model.kind == "keras":
        candidates = [source.with_suffix(".json"), source.parent / SIDECAR_NAME]
    elif model.kind == "saved_model":
        candidates = [source / SIDECAR_NAME, source.parent / SIDECAR_NAME]
    else:
        candidates = [source.parent / SIDECAR_NAME]
    return next((c for c in candidates if c.is_file()), None)


def record_threshold(
    sidecar: Path | None,
    info: ModelInfo,
    report: ValidationReport,
    *,
    subtract_mean: bool = False,
    image_size: int | None = None,
) -> ModelInfo:
    """Store the report's accuracy-maximising threshold in the sidecar; return the new info.

    A threshold measured on flipped-and-concatenated embeddings, mean-subtracted embeddings or
    another crop size does not apply to a single plain embedding, so such a report is not
    recorded (``info`` comes back unchanged). A sidecar that cannot be written is left as it is:
    the threshold is an aid, and the evaluation's own results are already out.
    """
    crop = image_size if image_size is not None else info.image_size
    if report.use_flipped_images or subtract_mean or crop != info.image_size:
        return info
    updated = with_threshold(
        info, report.result.threshold, report.result.distance_metric, protocol_text(report)
    )
    if sidecar is not None:
        try:
            write_model_info(sidecar, updated)
        except OSError:
            return info
    return updated


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
