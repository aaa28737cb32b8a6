"""Triplet selection at the original's round size (45 people x 40 images, 128-D).

Baseline: a direct port of the original ``select_triplets`` (a Python loop over every
anchor-positive pair with an ``np.where`` over all images each time). Ours: the vectorised
``facenet_cli.train.triplets.select_triplets`` with the same rule (``random`` mode).
Two embedding regimes: an untrained network (identities barely separated, most negatives
admissible) and a trained one (tight identity clusters, few admissible negatives).
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.harness import Comparison, compare
from facenet_cli.train.triplets import select_triplets

PEOPLE = 45
IMAGES = 40
DIM = 128
ALPHA = 0.2


def original_select_triplets(embeddings, nrof_images_per_class, people_per_batch, alpha, rs):
    """The original per-pair loop (paths replaced by indices; np.NaN spelled np.nan)."""
    emb_start_idx = 0
    num_trips = 0
    triplets = []
    for i in range(people_per_batch):
        nrof_images = int(nrof_images_per_class[i])
        for j in range(1, nrof_images):
            a_idx = emb_start_idx + j - 1
            neg_dists_sqr = np.sum(np.square(embeddings[a_idx] - embeddings), 1)
            for pair in range(j, nrof_images):
                p_idx = emb_start_idx + pair
                pos_dist_sqr = np.sum(np.square(embeddings[a_idx] - embeddings[p_idx]))
                neg_dists_sqr[emb_start_idx : emb_start_idx + nrof_images] = np.nan
                all_neg = np.where(neg_dists_sqr - pos_dist_sqr < alpha)[0]
                nrof_random_negs = all_neg.shape[0]
                if nrof_random_negs > 0:
                    rnd_idx = rs.randint(nrof_random_negs)
                    n_idx = all_neg[rnd_idx]
                    triplets.append((a_idx, p_idx, n_idx))
                num_trips += 1
        emb_start_idx += nrof_images
    rs.shuffle(triplets)
    return triplets, num_trips


def embeddings(separation: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(PEOPLE, DIM)) * separation
    emb = np.repeat(centres, IMAGES, axis=0) + rng.normal(size=(PEOPLE * IMAGES, DIM))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _blas_threads() -> str:
    """BLAS threads numpy uses (the distance matrix is one matrix product)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    return ",".join(str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")


def run(quick: bool = False) -> list[Comparison]:
    counts = [IMAGES] * PEOPLE
    results = []
    for label, separation in (("untrained", 0.3), ("trained", 1.0)):
        emb = embeddings(separation)
        rng = np.random.default_rng(0)
        rs = np.random.RandomState(0)
        ours_t, pairs = select_triplets(emb, counts, PEOPLE, ALPHA, "random", rng)
        base_t, base_pairs = original_select_triplets(emb, counts, PEOPLE, ALPHA, rs)
        assert pairs == base_pairs
        result = compare(
            f"select_triplets 45x40 ({label} embeddings)",
            lambda e=emb, g=rng: select_triplets(e, counts, PEOPLE, ALPHA, "random", g),
            lambda e=emb, r=rs: original_select_triplets(e, counts, PEOPLE, ALPHA, r),
            ours_label="vectorised select_triplets",
            baseline_label="original per-pair loop",
            repeats=3 if quick else 9,
            units=pairs,
            unit_name="pairs",
            target=">= 50x",
        )
        result.extra["triplets"] = f"{len(ours_t)} vs {len(base_t)}"
        result.extra["blas_threads"] = _blas_threads()
        result.extra["load_avg"] = f"{os.getloadavg()[0]:.1f}"
        results.append(result)
    return results
