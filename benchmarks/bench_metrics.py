"""The LFW metrics on 6000 pairs: vectorised ``evaluate`` versus the original's threshold loop.

The baseline is the loop-based transcription of the original protocol that the tests use as an
oracle (tests/evaluate/lfw_reference.py). Both run on the same embeddings; the benchmark refuses
to report a ratio unless their numbers agree.
"""

from __future__ import annotations

import numpy as np

from benchmarks.harness import Comparison, compare
from facenet_cli.evaluate.metrics import evaluate
from tests.evaluate import lfw_reference as reference


def _pairs(n_pairs: int = 6000, dim: int = 128, seed: int = 0):
    rng = np.random.default_rng(seed)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    e1 = unit(rng.normal(size=(n_pairs, dim)))
    issame = np.zeros(n_pairs, dtype=bool)
    # LFW layout: each fold is 300 matched then 300 mismatched pairs.
    for start in range(0, n_pairs, 600):
        issame[start : start + 300] = True
    # Overlapping classes (accuracy about 0.97, VAL about 0.66), like a real model on LFW.
    noisy = unit(e1 + 3.0 * unit(rng.normal(size=(n_pairs, dim))))
    e2 = np.where(issame[:, None], noisy, unit(rng.normal(size=(n_pairs, dim))))
    return e1, e2, issame


def _check_identical(e1, e2, issame, **kw) -> str:
    ours = evaluate(e1, e2, issame, **kw)
    ref = reference.evaluate(e1, e2, issame, **kw)
    same = (
        np.array_equal(ours.accuracy, ref["accuracy"])
        and np.array_equal(ours.tpr, ref["tpr"])
        and np.array_equal(ours.fpr, ref["fpr"])
        and np.array_equal(ours.best_thresholds, ref["best_thresholds"])
        and np.allclose(ours.val, ref["val"], rtol=0, atol=1e-12)
        and abs(ours.auc - ref["auc"]) <= 1e-12
        and abs(ours.eer - ref["eer"]) <= 1e-12
    )
    if not same:
        raise AssertionError(f"metrics differ from the loop reference for {kw}")
    return (
        f"acc {ours.accuracy_mean:.5f}+-{ours.accuracy_std:.5f}, VAL {ours.val_mean:.5f}, "
        f"AUC {ours.auc:.4f}, EER {ours.eer:.4f} (identical)"
    )


def run(quick: bool = False) -> list[Comparison]:
    e1, e2, issame = _pairs()
    results = []
    for label, kw in [
        ("euclidean", {"distance_metric": 0}),
        ("cosine+subtract_mean", {"distance_metric": 1, "subtract_mean": True}),
    ]:
        agreement = _check_identical(e1, e2, issame, **kw)
        result = compare(
            f"lfw metrics, 6000 pairs, {label}",
            lambda kw=kw: evaluate(e1, e2, issame, **kw),
            lambda kw=kw: reference.evaluate(e1, e2, issame, **kw),
            ours_label="metrics.evaluate (searchsorted)",
            baseline_label="original threshold loop",
            repeats=2 if quick else 5,
            warmup=0 if quick else 1,
            target=">= 20x",
            notes=agreement,
        )
        results.append(result)
    return results
