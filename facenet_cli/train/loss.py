"""The triplet loss and the per-batch triplet statistics logged with it."""

from __future__ import annotations

import tensorflow as tf


def split_triplets(embeddings: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Rows ``a, p, n, a, p, n, ...`` of a batch -> ``(anchors, positives, negatives)``."""
    dim = tf.shape(embeddings)[-1]
    grouped = tf.reshape(embeddings, tf.stack([-1, 3, dim]))
    return grouped[:, 0], grouped[:, 1], grouped[:, 2]


def triplet_distances(
    anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Squared Euclidean distances ``|a - p|^2`` and ``|a - n|^2`` per triplet."""
    pos = tf.reduce_sum(tf.square(anchor - positive), axis=1)
    neg = tf.reduce_sum(tf.square(anchor - negative), axis=1)
    return pos, neg


def triplet_loss(
    anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor, alpha: float
) -> tf.Tensor:
    """The original's loss: ``mean(max(|a - p|^2 - |a - n|^2 + alpha, 0))``.

    Args:
        anchor: ``(T, D)`` L2-normalised anchor embeddings.
        positive: ``(T, D)`` embeddings of the same identities.
        negative: ``(T, D)`` embeddings of other identities.
        alpha: the margin.

    Returns:
        A scalar tensor (weight decay is added by the caller).
    """
    pos, neg = triplet_distances(anchor, positive, negative)
    return tf.reduce_mean(tf.maximum(pos - neg + alpha, 0.0))


def triplet_stats(
    anchor: tf.Tensor, positive: tf.Tensor, negative: tf.Tensor, alpha: float
) -> dict[str, tf.Tensor]:
    """Share of triplets with a positive loss and the mean positive / negative distances."""
    pos, neg = triplet_distances(anchor, positive, negative)
    active = tf.cast(pos - neg + alpha > 0.0, tf.float32)
    return {
        "active_fraction": tf.reduce_mean(active),
        "pos_dist": tf.reduce_mean(pos),
        "neg_dist": tf.reduce_mean(neg),
    }
