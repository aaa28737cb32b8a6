"""A classifier on embeddings: the split, the fit, "unknown", and a pickle-free file.

The original trains ``SVC(kernel="linear", probability=True)``. Here a multinomial logistic
regression (scikit-learn) gives the probabilities: its whole state is a weight matrix and a bias,
so it is saved as arrays and rebuilt exactly, where an SVC's Platt-scaled pairwise probabilities
live in libsvm internals that only pickle restores. It also names better: on the demo's 30
held-out identities (5 training photos each, the 300-step demo model) the most probable class is
right for 0.973 of the other photos, against 0.826 for the SVC's probabilities (whose Platt
scaling is fitted by an internal cross-validation that few photos per person starve;
scikit-learn 1.9 deprecates it) and 0.946 for the nearest photo. A prediction is "unknown" when
its probability is below ``min_probability`` or when the photo is at least the distance threshold
away from every training photo of the predicted person: with a closed set of names the most
probable one is always somebody, and only the distance says whether it is that person at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.use.store import FORMAT_VERSION, kind_format, load_npz, save_npz_atomic
from facenet_cli.use.verify import cross_distances
from facenet_cli.use.whitening import whiten

UNKNOWN = "unknown"
CLASSIFIER_KIND = "classifier"


@dataclass(frozen=True)
class Split:
    """Row indices of a train / test split of labelled embeddings."""

    train: np.ndarray
    test: np.ndarray
    nrof_classes_dropped: int


def split_dataset(
    labels: np.ndarray,
    min_nrof_images_per_class: int,
    nrof_train_images_per_class: int,
    seed: int = 666,
) -> Split:
    """The original's ``split_dataset``: per class (with at least ``min_nrof_images_per_class``
    images), ``nrof_train_images_per_class`` shuffled images to train on, the rest to test."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    dropped = 0
    for label in np.unique(labels):
        rows = np.flatnonzero(labels == label)
        if len(rows) < min_nrof_images_per_class:
            dropped += 1
            continue
        rows = rng.permutation(rows)
        train.append(rows[:nrof_train_images_per_class])
        test.append(rows[nrof_train_images_per_class:])
    empty = np.zeros(0, np.int64)
    return Split(
        np.sort(np.concatenate(train)) if train else empty,
        np.sort(np.concatenate(test)) if test else empty,
        dropped,
    )


@dataclass(frozen=True)
class FaceClassifier:
    """A fitted classifier and what it needs to say "unknown".

    Attributes:
        class_names: the people, in the order of ``coef`` rows.
        coef: ``(C, D)`` logistic-regression weights (``(1, D)`` for two people).
        intercept: ``(C,)`` biases (``(1,)`` for two people).
        train_embeddings: ``(N, D)`` the embeddings it was fitted on.
        train_labels: ``(N,)`` their indices into ``class_names``.
        distance_threshold: a photo farther than this from every training photo of the predicted
            person is "unknown" (None: no distance rule).
        distance_metric: 0 squared Euclidean, 1 angular.
        min_probability: below this probability the prediction is "unknown".
        meta: the model it was trained with, where the threshold came from, the options.
        whitening: ``(D, D)`` within-person whitening (:mod:`facenet_cli.use.whitening`)
            applied to every embedding before the regression and the distances (None: none).
    """

    class_names: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    train_embeddings: np.ndarray
    train_labels: np.ndarray
    distance_threshold: float | None
    distance_metric: int
    min_probability: float
    meta: dict[str, Any]
    whitening: np.ndarray | None = None

    def features(self, embeddings: np.ndarray) -> np.ndarray:
        """Embeddings as the regression and the distances see them (whitened, if fitted so)."""
        return whiten(embeddings, self.whitening)

    def probabilities(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, C)`` class probabilities, as ``LogisticRegression.predict_proba`` gives them."""
        scores = self.features(embeddings) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # two classes: one logit for the second
            p = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        scores -= scores.max(axis=1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(axis=1, keepdims=True)

    def nearest_distances(self, embeddings: np.ndarray) -> np.ndarray:
        """``(N, C)`` distance from each embedding to the nearest training photo of each class."""
        d = cross_distances(
            self.features(embeddings), self.features(self.train_embeddings), self.distance_metric
        )
        out = np.full((len(d), len(self.class_names)), np.inf)
        for c in range(len(self.class_names)):
            cols = self.train_labels == c
            if cols.any():
                out[:, c] = d[:, cols].min(axis=1)
        return out

    def predict(self, embeddings: np.ndarray) -> list[Prediction]:
        """A name (or "unknown") with its probability and distance for every embedding."""
        if len(embeddings) == 0:
            return []
        probs = self.probabilities(embeddings)
        best = np.argmax(probs, axis=1)
        dist = self.nearest_distances(embeddings)[np.arange(len(best)), best]
        out = []
        for k, c in enumerate(best):
            p = float(probs[k, c])
            far = self.distance_threshold is not None and dist[k] >= self.distance_threshold
            reason = None
            if p < self.min_probability:
                reason = f"probability {p:.2f} < {self.min_probability:g}"
            elif far:
                reason = f"distance {dist[k]:.3f} >= {self.distance_threshold:g}"
            name = UNKNOWN if reason else self.class_names[int(c)]
            out.append(Prediction(name, self.class_names[int(c)], p, float(dist[k]), reason))
        return out


@dataclass(frozen=True)
class Prediction:
    """One answer: ``name`` is the person or "unknown"; ``nearest`` the most probable person."""

    name: str
    nearest: str
    probability: float
    distance: float
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nearest": self.nearest,
            "probability": round(self.probability, 4),
            "distance": round(self.distance, 4),
            "unknown_because": self.reason,
        }


def fit_classifier(
    embeddings: np.ndarray,
    labels: np.ndarray,
    class_names: list[str] | tuple[str, ...],
    *,
    distance_threshold: float | None,
    distance_metric: int,
    min_probability: float,
    meta: dict[str, Any] | None = None,
    seed: int = 666,
    whitened: bool = False,
) -> FaceClassifier:
    """Fit a multinomial logistic regression on labelled embeddings.

    With ``whitened`` the embeddings are first whitened with the within-person covariance of
    these training photos (:func:`~facenet_cli.use.whitening.fit_whitening`; none when there are
    too few photos of the same people).

    Classes with no training rows are left out (their names with them), so the stored classes
    are exactly the ones the classifier can answer.

    Raises:
        InputError: fewer than two people with training images.
    """
    from sklearn.linear_model import LogisticRegression

    from facenet_cli.use.whitening import fit_whitening

    labels = np.asarray(labels, np.int64)
    present = np.unique(labels)
    if len(present) < 2:
        raise InputError(f"a classifier needs images of at least two people, got {len(present)}")
    remap = {int(old): new for new, old in enumerate(present)}
    y = np.array([remap[int(v)] for v in labels], np.int64)
    names = tuple(str(class_names[int(old)]) for old in present)
    # Embeddings are unit vectors; a large C lets the weights reach the scale that separates
    # many people (the default C=1 leaves every probability low on 100+ identities).
    matrix = fit_whitening(embeddings, y) if whitened else None
    model = LogisticRegression(C=100.0, max_iter=2000, random_state=seed)
    model.fit(whiten(embeddings, matrix), y)
    return FaceClassifier(
        class_names=names,
        coef=np.asarray(model.coef_, np.float64),
        intercept=np.asarray(model.intercept_, np.float64),
        train_embeddings=np.asarray(embeddings, np.float32),
        train_labels=y,
        distance_threshold=distance_threshold,
        distance_metric=int(distance_metric),
        min_probability=float(min_probability),
        meta=dict(meta or {}),
        whitening=matrix,
    )


def save_classifier(path: Path, clf: FaceClassifier) -> Path:
    """Write a classifier as arrays and a JSON header (no pickle), atomically."""
    header = {
        **clf.meta,
        "format": kind_format(CLASSIFIER_KIND),
        "version": FORMAT_VERSION,
        "class_names": list(clf.class_names),
        "distance_threshold": clf.distance_threshold,
        "distance_metric": clf.distance_metric,
        "min_probability": clf.min_probability,
    }
    arrays = {
        "coef": clf.coef,
        "intercept": clf.intercept,
        "train_embeddings": clf.train_embeddings,
        "train_labels": clf.train_labels,
        "meta": np.array(json.dumps(header)),
    }
    if clf.whitening is not None:
        arrays["whitening"] = clf.whitening
    return save_npz_atomic(path, arrays)


def load_classifier(path: Path) -> FaceClassifier:
    """Read a classifier file.

    Raises:
        InputError: a missing, damaged or foreign file.
    """
    arrays, meta = load_npz(
        path, CLASSIFIER_KIND, ("coef", "intercept", "train_embeddings", "train_labels")
    )
    try:
        names = tuple(str(n) for n in meta.pop("class_names"))
        threshold = meta.pop("distance_threshold")
        metric = int(meta.pop("distance_metric"))
        min_probability = float(meta.pop("min_probability"))
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: damaged classifier file (incomplete header)") from None
    coef, intercept = arrays["coef"], arrays["intercept"]
    emb, lab = arrays["train_embeddings"], arrays["train_labels"]
    matrix = arrays.get("whitening")
    rows = 1 if len(names) == 2 else len(names)
    if (
        coef.ndim != 2 or coef.shape[0] != rows or intercept.shape != (rows,)
        or emb.ndim != 2 or emb.shape[1] != coef.shape[1] or lab.shape != (len(emb),)
        or (len(lab) and (lab.min() < 0 or lab.max() >= len(names)))
        or (matrix is not None and matrix.shape != (emb.shape[1], emb.shape[1]))
    ):  # fmt: skip
        raise InputError(f"{path}: damaged classifier file (arrays do not fit together)")
    return FaceClassifier(
        names, coef.astype(np.float64), intercept.astype(np.float64), emb, lab.astype(np.int64),
        None if threshold is None else float(threshold), metric, min_probability, meta,
        None if matrix is None else matrix.astype(np.float64),
    )  # fmt: skip
