"""A direct, loop-based transcription of the original FaceNet LFW protocol, used as an oracle.

It follows ``facenet.calculate_roc`` / ``calculate_val`` / ``calculate_accuracy`` /
``calculate_val_far`` and ``lfw.evaluate`` line by line: one Python iteration per threshold,
scikit-learn's ``KFold(shuffle=False)``. Only the places where the original crashes or silently
misreports are replaced by what it meant, each marked FIX:

* the VAL threshold comes from linear interpolation written out as the SciPy of the original's time
  evaluated it on duplicate FAR values (the last point of a run of equal FARs), since current SciPy
  refuses duplicates;
* an unreachable FAR target yields NaN for that fold instead of a threshold of 0;
* cosine similarity is clipped before arccos;
* the EER is found with ``brentq`` on the ROC closed at (0, 0) and (1, 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from sklearn.model_selection import KFold


def distance(embeddings1, embeddings2, distance_metric=0):
    if distance_metric == 0:
        diff = np.subtract(embeddings1, embeddings2)
        dist = np.sum(np.square(diff), 1)
    elif distance_metric == 1:
        dot = np.sum(np.multiply(embeddings1, embeddings2), axis=1)
        norm = np.linalg.norm(embeddings1, axis=1) * np.linalg.norm(embeddings2, axis=1)
        similarity = np.clip(dot / norm, -1.0, 1.0)  # FIX: rounding can exceed 1
        dist = np.arccos(similarity) / math.pi
    else:
        raise ValueError(distance_metric)
    return dist


def calculate_accuracy(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict_issame, actual_issame))
    fp = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    tn = np.sum(np.logical_and(np.logical_not(predict_issame), np.logical_not(actual_issame)))
    fn = np.sum(np.logical_and(np.logical_not(predict_issame), actual_issame))
    tpr = 0 if (tp + fn == 0) else float(tp) / float(tp + fn)
    fpr = 0 if (fp + tn == 0) else float(fp) / float(fp + tn)
    acc = float(tp + tn) / dist.size
    return tpr, fpr, acc


def calculate_val_far(threshold, dist, actual_issame):
    predict_issame = np.less(dist, threshold)
    true_accept = np.sum(np.logical_and(predict_issame, actual_issame))
    false_accept = np.sum(np.logical_and(predict_issame, np.logical_not(actual_issame)))
    n_same = np.sum(actual_issame)
    n_diff = np.sum(np.logical_not(actual_issame))
    val = float(true_accept) / float(n_same)
    far = float(false_accept) / float(n_diff)
    return val, far


def slinear_at(x, y, x_new):
    """FIX: linear B-spline interpolation as SciPy < 1.11 evaluated it, duplicates included.

    The knot interval is the last one starting at or before ``x_new``; within it the value is
    the de Boor combination of its two end points.
    """
    j = None
    for i in range(len(x)):
        if x[i] <= x_new:
            j = i
    if j is None:
        raise ValueError("below range")
    if j == len(x) - 1:
        return float(y[j])
    return float(((x[j + 1] - x_new) * y[j] + (x_new - x[j]) * y[j + 1]) / (x[j + 1] - x[j]))


def calculate_roc(
    thresholds,
    embeddings1,
    embeddings2,
    actual_issame,
    nrof_folds=10,
    distance_metric=0,
    subtract_mean=False,
):
    nrof_pairs = min(len(actual_issame), embeddings1.shape[0])
    nrof_thresholds = len(thresholds)
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    tprs = np.zeros((nrof_folds, nrof_thresholds))
    fprs = np.zeros((nrof_folds, nrof_thresholds))
    accuracy = np.zeros(nrof_folds)
    best_thresholds = np.zeros(nrof_folds)
    indices = np.arange(nrof_pairs)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        if subtract_mean:
            mean = np.mean(np.concatenate([embeddings1[train_set], embeddings2[train_set]]), axis=0)
        else:
            mean = 0.0
        dist = distance(embeddings1 - mean, embeddings2 - mean, distance_metric)
        acc_train = np.zeros(nrof_thresholds)
        for threshold_idx, threshold in enumerate(thresholds):
            _, _, acc_train[threshold_idx] = calculate_accuracy(
                threshold, dist[train_set], actual_issame[train_set]
            )
        best_threshold_index = np.argmax(acc_train)
        best_thresholds[fold_idx] = thresholds[best_threshold_index]
        for threshold_idx, threshold in enumerate(thresholds):
            tprs[fold_idx, threshold_idx], fprs[fold_idx, threshold_idx], _ = calculate_accuracy(
                threshold, dist[test_set], actual_issame[test_set]
            )
        _, _, accuracy[fold_idx] = calculate_accuracy(
            thresholds[best_threshold_index], dist[test_set], actual_issame[test_set]
        )
    tpr = np.mean(tprs, 0)
    fpr = np.mean(fprs, 0)
    return tpr, fpr, accuracy, best_thresholds


def calculate_val(
    thresholds,
    embeddings1,
    embeddings2,
    actual_issame,
    far_target,
    nrof_folds=10,
    distance_metric=0,
    subtract_mean=False,
):
    nrof_pairs = min(len(actual_issame), embeddings1.shape[0])
    nrof_thresholds = len(thresholds)
    k_fold = KFold(n_splits=nrof_folds, shuffle=False)
    val = np.zeros(nrof_folds)
    far = np.zeros(nrof_folds)
    indices = np.arange(nrof_pairs)
    for fold_idx, (train_set, test_set) in enumerate(k_fold.split(indices)):
        if subtract_mean:
            mean = np.mean(np.concatenate([embeddings1[train_set], embeddings2[train_set]]), axis=0)
        else:
            mean = 0.0
        dist = distance(embeddings1 - mean, embeddings2 - mean, distance_metric)
        far_train = np.zeros(nrof_thresholds)
        for threshold_idx, threshold in enumerate(thresholds):
            _, far_train[threshold_idx] = calculate_val_far(
                threshold, dist[train_set], actual_issame[train_set]
            )
        if np.max(far_train) >= far_target:
            threshold = slinear_at(far_train, thresholds, far_target)
            val[fold_idx], far[fold_idx] = calculate_val_far(
                threshold, dist[test_set], actual_issame[test_set]
            )
        else:
            val[fold_idx] = far[fold_idx] = math.nan  # FIX: was a silent threshold of 0
    return val, far


def eer(fpr, tpr):
    x = np.concatenate(([0.0], fpr, [1.0]))
    y = np.concatenate(([0.0], tpr, [1.0]))
    return brentq(lambda v: 1.0 - v - np.interp(v, x, y), 0.0, 1.0, xtol=1e-15)


def evaluate(
    embeddings1,
    embeddings2,
    actual_issame,
    nrof_folds=10,
    distance_metric=0,
    subtract_mean=False,
    far_target=1e-3,
):
    """Everything the original's ``lfw.evaluate`` + ``validate_on_lfw`` printed, as a dict."""
    from sklearn import metrics

    actual_issame = np.asarray(actual_issame)
    thresholds = np.arange(0, 4, 0.01)
    tpr, fpr, accuracy, best = calculate_roc(
        thresholds,
        embeddings1,
        embeddings2,
        actual_issame,
        nrof_folds=nrof_folds,
        distance_metric=distance_metric,
        subtract_mean=subtract_mean,
    )
    thresholds = np.arange(0, 4, 0.001)
    val, far = calculate_val(
        thresholds,
        embeddings1,
        embeddings2,
        actual_issame,
        far_target,
        nrof_folds=nrof_folds,
        distance_metric=distance_metric,
        subtract_mean=subtract_mean,
    )
    return {
        "tpr": tpr,
        "fpr": fpr,
        "accuracy": accuracy,
        "best_thresholds": best,
        "val": val,
        "far": far,
        "auc": metrics.auc(fpr, tpr),
        "eer": eer(fpr, tpr),
    }
