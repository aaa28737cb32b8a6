"""Distance matrices and same / different verdicts (pure numpy)."""

from __future__ import annotations

import math

import numpy as np

from facenet_cli.evaluate.metrics import metric_id


def distance_matrix(embeddings: np.ndarray, distance_metric: int | str = 0) -> np.ndarray:
    """All pairwise distances of ``(N, D)`` embeddings, in the metric of the LFW protocol.

    Args:
        embeddings: ``(N, D)`` rows.
        distance_metric: 0 / "euclidean" (squared) or 1 / "cosine" (``arccos(cos) / pi``).

    Returns:
        ``(N, N)`` symmetric float64 matrix with a zero diagonal.
    """
    return cross_distances(embeddings, embeddings, distance_metric, symmetric=True)


def cross_distances(
    a: np.ndarray, b: np.ndarray, distance_metric: int | str = 0, *, symmetric: bool = False
) -> np.ndarray:
    """Distances between every row of ``a`` ``(N, D)`` and every row of ``b`` ``(M, D)``.

    The same values as ``evaluate.metrics.distance`` on the corresponding row pairs (up to
    rounding), computed as one matrix product instead of N x M row differences.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    metric = metric_id(distance_metric)
    dot = a @ b.T
    if metric == 0:
        sq = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * dot
        out = np.maximum(sq, 0.0)
    else:
        norm = np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :]
        out = np.arccos(np.clip(dot / np.maximum(norm, 1e-30), -1.0, 1.0)) / math.pi
    if symmetric:
        out = (out + out.T) / 2.0
        np.fill_diagonal(out, 0.0)
    return out


def verdicts(distances: np.ndarray, threshold: float) -> np.ndarray:
    """True where a pair is the same person: distance strictly below the threshold (as in
    the protocol's ``count_below``)."""
    return np.asarray(distances) < threshold
