"""Online triplet selection (pure numpy): people sampling and negative mining.

One selection round samples ``people_per_batch`` identities, embeds their images and picks, for
every anchor-positive pair inside an identity, one negative from the other identities. The
original recipe does this with a Python loop over the pairs; here the whole round is a handful of
array operations over the distance matrix.

Modes (``d`` is the squared Euclidean distance):

* ``random`` - the original's rule: a negative drawn uniformly among those with
  ``d(a, n) - d(a, p) < alpha``. This admits hard negatives (``d(a, n) < d(a, p)``).
* ``semi-hard`` - the FaceNet paper's rule: a negative drawn uniformly among those with
  ``d(a, p) < d(a, n) < d(a, p) + alpha``.
* ``hard`` - the hardest negative, ``argmin_n d(a, n)``, kept only when it violates the margin.

A pair without an admissible negative yields no triplet, as in the original.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

MODES = ("random", "semi-hard", "hard")

# Rejection sampling runs while a round still resolves a good share of the pending pairs (each
# round costs O(pending)); the few pairs left with small admissible sets get the exact fallback.
_MAX_REJECTION_ROUNDS = 64
_MIN_ROUND_YIELD = 0.02
# Below this many pending pairs the exact fallback is cheaper than another round's overhead.
_MIN_PENDING_FOR_ROUND = 64


def sample_people(
    class_sizes: Sequence[int],
    people_per_batch: int,
    images_per_person: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original's ``sample_people``: identities in random order, random images from each.

    Identities are visited in a random order and up to ``images_per_person`` random images are
    taken from each until ``people_per_batch * images_per_person`` images are gathered (more
    identities when some are small). Unlike the original, a dataset with fewer images than that
    gives a smaller sample instead of an index error.

    Args:
        class_sizes: number of images of each class of the dataset.
        people_per_batch: identities wanted per round.
        images_per_person: images wanted per identity.
        rng: the random generator (its state is part of the training checkpoint).

    Returns:
        ``(class_index, image_index, nrof_images_per_class)``: for every sampled image its class
        and its index inside that class (images of one class are contiguous), and the number of
        images taken from each sampled class in order.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    wanted = people_per_batch * images_per_person
    order = rng.permutation(len(sizes))
    class_index: list[np.ndarray] = []
    image_index: list[np.ndarray] = []
    per_class: list[int] = []
    gathered = 0
    for cls in order:  # a loop over identities (tens), never over images or pairs
        if gathered >= wanted:
            break
        take = int(min(sizes[cls], images_per_person, wanted - gathered))
        if take <= 0:
            continue
        image_index.append(rng.permutation(int(sizes[cls]))[:take])
        class_index.append(np.full(take, cls, dtype=np.int64))
        per_class.append(take)
        gathered += take
    if not per_class:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return (
        np.concatenate(class_index),
        np.concatenate(image_index).astype(np.int64),
        np.asarray(per_class, dtype=np.int64),
    )


def squared_distances(embeddings: np.ndarray, rows: int | None = None) -> np.ndarray:
    """Squared Euclidean distances from the first ``rows`` embeddings to all of them (float32).

    One matrix product of augmented vectors, ``[e_a, |e_a|^2, 1] . [-2 e_n, 1, |e_n|^2]``, gives
    ``|e_a|^2 + |e_n|^2 - 2 e_a . e_n`` without further passes over the matrix. Rounding can leave
    values a few ulp below zero; the selection rules are unaffected by that.
    """
    emb = np.asarray(embeddings, dtype=np.float32)
    rows = emb.shape[0] if rows is None else rows
    sq = np.einsum("ij,ij->i", emb, emb)[:, None]
    ones = np.ones_like(sq)
    left = np.concatenate([emb[:rows], sq[:rows], ones[:rows]], axis=1)
    right = np.concatenate([-2.0 * emb, ones, sq], axis=1)
    return left @ right.T


def anchor_positive_pairs(
    nrof_images_per_class: Sequence[int] | np.ndarray, people_per_batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair (a, p), a < p, inside each of the first ``people_per_batch`` classes.

    Pairs come in the original's order (by anchor, then positive). Images of the remaining
    classes (``sample_people`` may take more identities than ``people_per_batch``) only serve as
    negatives, as in the original.
    """
    counts = tuple(int(n) for n in np.asarray(nrof_images_per_class)[:people_per_batch])
    anchors, positives = _pairs_of_layout(counts)
    return anchors.copy(), positives.copy()


@functools.lru_cache(maxsize=8)
def _pairs_of_layout(counts: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    # Cached: rounds usually repeat the same layout (images_per_person from every class).
    if not counts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    sizes = np.asarray(counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    anchors: list[np.ndarray] = []
    positives: list[np.ndarray] = []
    for start, n in zip(starts, sizes, strict=True):  # one step per class
        a, p = np.triu_indices(int(n), k=1)
        anchors.append(a + start)
        positives.append(p + start)
    return np.concatenate(anchors), np.concatenate(positives)


def select_triplets(
    embeddings: np.ndarray,
    nrof_images_per_class: Sequence[int] | np.ndarray,
    people_per_batch: int,
    alpha: float,
    mode: str = "random",
    rng: np.random.Generator | None = None,
) -> tuple[np.ndarray, int]:
    """Select (anchor, positive, negative) triplets from one round's embeddings.

    Args:
        embeddings: ``(N, D)`` embeddings (L2-normalised in training), images of one class
            contiguous, classes in the order of ``nrof_images_per_class``.
        nrof_images_per_class: images of each sampled class; sums to ``N``.
        people_per_batch: anchors come from the first ``people_per_batch`` classes.
        alpha: the triplet margin.
        mode: ``random`` (the original's rule), ``semi-hard`` or ``hard`` (see the module doc).
        rng: random generator for the negative draws and the final shuffle.

    Returns:
        ``(triplets, nrof_pairs)``: an ``int64`` array ``(T, 3)`` of row indices into
        ``embeddings`` in random order, and the number of anchor-positive pairs considered.

    Raises:
        ValueError: an unknown mode, or class counts that do not match the embeddings.
    """
    if mode not in MODES:
        raise ValueError(f"unknown triplet selection mode {mode!r}; choose from {', '.join(MODES)}")
    rng = np.random.default_rng() if rng is None else rng
    counts = np.asarray(nrof_images_per_class, dtype=np.int64)
    emb = np.asarray(embeddings)
    if counts.sum() != emb.shape[0]:
        raise ValueError(
            f"nrof_images_per_class sums to {int(counts.sum())} but there are {emb.shape[0]} "
            "embeddings"
        )
    anchors, positives = anchor_positive_pairs(counts, people_per_batch)
    nrof_pairs = int(anchors.size)
    if nrof_pairs == 0:
        return np.zeros((0, 3), dtype=np.int64), 0

    # Class layout: block [start, start + count) of every class, and each image's class.
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    image_class = np.repeat(np.arange(counts.size), counts)
    nrof_anchor_rows = int(anchors.max()) + 1
    dist = squared_distances(emb, nrof_anchor_rows)
    # Same formula for positives and negatives, so the rules compare like with like.
    pos_dist = dist[anchors, positives]
    # Own-class distances become +inf: never a negative, never below any threshold.
    for start, n in zip(starts, counts, strict=True):
        if start < nrof_anchor_rows:
            dist[start : start + n, start : start + n] = np.inf

    threshold = (pos_dist + np.float32(alpha)).astype(np.float32)
    if mode == "hard":
        hardest = np.argmin(dist, axis=1)
        negatives = hardest[anchors]
        keep = dist[anchors, negatives] < threshold
        negatives = np.where(keep, negatives, -1)
    else:
        lower = pos_dist if mode == "semi-hard" else None
        negatives = _draw_in_interval(
            dist,
            anchors,
            lower,
            threshold,
            starts[image_class[anchors]],
            counts[image_class[anchors]],
            rng,
        )
    found = negatives >= 0
    triplets = np.stack([anchors[found], positives[found], negatives[found]], axis=1)
    return triplets[rng.permutation(len(triplets))], nrof_pairs


def _draw_in_interval(
    dist: np.ndarray,
    anchors: np.ndarray,
    lower: np.ndarray | None,
    upper: np.ndarray,
    own_start: np.ndarray,
    own_count: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """For each pair i, a negative drawn uniformly from ``{n : lower < dist[a_i, n] < upper}``.

    ``lower=None`` means no lower bound; -1 marks pairs whose set is empty. Rejection sampling
    resolves, in a few vectorised rounds, the pairs whose admissible set is a good share of the
    negatives (most pairs early in training); the rest get an exact draw from their anchor's
    sorted candidates. Both stages draw uniformly over the admissible set, so the mixture is
    exactly uniform.
    """
    nrof_pairs = anchors.size
    nrof_images = dist.shape[1]
    result = np.full(nrof_pairs, -1, dtype=np.int64)
    # Empty sets are known without sampling: nothing lies below the nearest negative.
    nearest = dist.min(axis=1)
    pending = np.flatnonzero(upper > nearest[anchors])
    nrof_negatives = nrof_images - own_count
    flat = dist.reshape(-1)
    for _ in range(_MAX_REJECTION_ROUNDS):
        if pending.size < _MIN_PENDING_FOR_ROUND:
            break
        # Uniform index among the anchor's negatives, skipping its own class block.
        j = (rng.random(pending.size) * nrof_negatives[pending]).astype(np.int64)
        j += (j >= own_start[pending]) * own_count[pending]
        value = flat[anchors[pending] * nrof_images + j]  # flat indexing: cheaper than 2-D
        hit = value < upper[pending]
        if lower is not None:
            hit &= value > lower[pending]
        result[pending[hit]] = j[hit]
        resolved = np.count_nonzero(hit)
        pending = pending[~hit]
        if resolved < _MIN_ROUND_YIELD * (pending.size + resolved):
            break
    if pending.size:
        result[pending] = _exact_draw(dist, anchors[pending], lower if lower is None else
                                      lower[pending], upper[pending], rng)  # fmt: skip
    return result


def _exact_draw(
    dist: np.ndarray,
    anchors: np.ndarray,
    lower: np.ndarray | None,
    upper: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Exact uniform draws: each anchor's candidates below its largest threshold, sorted once.

    The candidates of all anchors are sorted together on the key ``row * width + distance``,
    which is exact in float64 (a float32 distance plus a multiple of a power of two), so one
    ``searchsorted`` gives every pair's admissible rank range.
    """
    rows, row_of_pair = np.unique(anchors, return_inverse=True)
    row_of_pair = row_of_pair.ravel()
    limit = np.full(rows.size, -np.inf, dtype=np.float64)
    np.maximum.at(limit, row_of_pair, upper.astype(np.float64))
    block = dist[rows]
    # 1-D nonzero is several times faster than the 2-D form on a sparse mask.
    flat = np.flatnonzero(block < limit[:, None].astype(dist.dtype))
    cand_row = flat // block.shape[1]
    cand_col = flat - cand_row * block.shape[1]
    values = np.maximum(block.reshape(-1)[flat].astype(np.float64), 0.0)
    width = 2.0 ** np.ceil(np.log2(max(float(limit.max(initial=0.0)), 0.0) + 2.0))
    keys = cand_row * width + values
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    cand_col = cand_col[order]
    base = row_of_pair * width
    hi = np.searchsorted(keys, base + np.maximum(upper.astype(np.float64), 0.0), side="left")
    if lower is None:
        lo = np.searchsorted(keys, base, side="left")
    else:
        lo = np.searchsorted(keys, base + np.maximum(lower.astype(np.float64), 0.0), side="right")
    size = hi - lo
    pick = lo + (rng.random(anchors.size) * size).astype(np.int64)
    return np.where(size > 0, cand_col[np.minimum(pick, max(keys.size - 1, 0))], -1)
