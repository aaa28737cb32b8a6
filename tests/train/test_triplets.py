"""Triplet selection against a straightforward per-pair reference written here."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_cli.train.triplets import sample_people, select_triplets

TOL = 1e-5


def clustered(counts: list[int], dim: int = 16, spread: float = 1.0, seed: int = 0) -> np.ndarray:
    """L2-normalised embeddings, one noisy cluster per class (``spread`` = cluster separation)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(counts), dim)) * spread
    emb = np.repeat(centres, counts, axis=0) + rng.normal(size=(sum(counts), dim))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def reference_sets(emb, counts, people_per_batch, alpha, mode):
    """{(a, p): set of admissible negatives} by the plain definition, one pair at a time."""
    emb = emb.astype(np.float64)
    labels = np.repeat(np.arange(len(counts)), counts)
    start = 0
    sets = {}
    for c in range(min(people_per_batch, len(counts))):
        for a in range(start, start + counts[c]):
            for p in range(a + 1, start + counts[c]):
                d_ap = float(np.sum((emb[a] - emb[p]) ** 2))
                admissible = set()
                dists = {
                    n: float(np.sum((emb[a] - emb[n]) ** 2))
                    for n in range(len(emb))
                    if labels[n] != labels[a]
                }
                hardest = min(dists, key=dists.get)
                for n, d_an in dists.items():
                    if mode == "random" and d_an - d_ap < alpha:
                        admissible.add(n)
                    elif mode == "semi-hard" and d_ap < d_an < d_ap + alpha:
                        admissible.add(n)
                    elif mode == "hard" and n == hardest and d_an - d_ap < alpha:
                        admissible.add(n)
                sets[(a, p)] = (admissible, d_ap, dists)
        start += counts[c]
    return sets


def near_boundary(d_ap, d_an, alpha, mode):
    """True when float32 rounding could flip the rule (excluded from exact set checks)."""
    edges = [d_an - d_ap - alpha] + ([d_an - d_ap] if mode == "semi-hard" else [])
    return any(abs(e) < TOL for e in edges)


@pytest.mark.parametrize("mode", ["random", "semi-hard", "hard"])
@pytest.mark.parametrize("spread", [0.3, 3.0])
def test_selection_matches_reference(mode, spread):
    counts = [5, 3, 4, 1, 6, 2]  # uneven, one singleton; the last class only serves as negatives
    ppb = 5
    alpha = 0.2
    emb = clustered(counts, spread=spread)
    triplets, nrof_pairs = select_triplets(emb, counts, ppb, alpha, mode, np.random.default_rng(1))
    ref = reference_sets(emb, counts, ppb, alpha, mode)
    assert nrof_pairs == len(ref)
    assert triplets.dtype == np.int64 and triplets.shape[1] == 3
    labels = np.repeat(np.arange(len(counts)), counts)
    seen = set()
    for a, p, n in triplets.tolist():
        assert (a, p) in ref, "anchor-positive must be a within-class pair of the first classes"
        assert (a, p) not in seen, "one triplet per pair"
        seen.add((a, p))
        assert labels[n] != labels[a], "the anchor's own class is never a negative"
        admissible, d_ap, dists = ref[(a, p)]
        assert n in admissible or near_boundary(d_ap, dists[n], alpha, mode)
    for pair, (admissible, d_ap, dists) in ref.items():
        clear = {n for n in admissible if not near_boundary(d_ap, dists[n], alpha, mode)}
        if clear:
            assert pair in seen, f"pair {pair} has admissible negatives but no triplet"
        elif not any(near_boundary(d_ap, d, alpha, mode) for d in dists.values()):
            assert pair not in seen, f"pair {pair} has no admissible negative"


def test_modes_differ_and_semi_hard_excludes_hard_negatives():
    counts = [8] * 6
    emb = clustered(counts, spread=0.6, seed=3)
    trip, _ = select_triplets(emb, counts, 6, 0.2, "semi-hard", np.random.default_rng(0))
    d = lambda i, j: float(np.sum((emb[i].astype(np.float64) - emb[j]) ** 2))  # noqa: E731
    assert len(trip) > 0
    assert all(d(a, n) > d(a, p) - TOL for a, p, n in trip)
    rand, _ = select_triplets(emb, counts, 6, 0.2, "random", np.random.default_rng(0))
    assert any(d(a, n) < d(a, p) for a, p, n in rand), "random admits hard negatives"


@pytest.mark.parametrize("path", ["rejection", "exact"])
def test_random_draw_is_uniform_over_admissible_set(path, monkeypatch):
    # Both stages of the draw must be uniform: force rejection rounds (then the exact draw for
    # what they leave) or the exact draw alone.
    from facenet_cli.train import triplets

    monkeypatch.setattr(triplets, "_MIN_PENDING_FOR_ROUND", 0 if path == "rejection" else 10**9)
    monkeypatch.setattr(triplets, "_MIN_ROUND_YIELD", 0.0)
    counts = [4] * 10
    emb = clustered(counts, spread=0.8, seed=5)
    ref = reference_sets(emb, counts, 10, 0.2, "random")
    rng = np.random.default_rng(7)
    hits: dict[tuple[int, int], dict[int, int]] = {}
    rounds = 600
    for _ in range(rounds):
        trip, _ = select_triplets(emb, counts, 10, 0.2, "random", rng)
        for a, p, n in trip.tolist():
            hits.setdefault((a, p), {}).setdefault(n, 0)
            hits[(a, p)][n] += 1
    checked = 0
    for pair, (admissible, _, _) in ref.items():
        k = len(admissible)
        if k < 2:
            continue
        counts_seen = np.array([hits[pair].get(n, 0) for n in sorted(admissible)])
        assert counts_seen.sum() == rounds
        expected = rounds / k
        # Each count is Binomial(rounds, 1/k): 5 standard deviations is a generous band.
        sd = np.sqrt(rounds * (1 / k) * (1 - 1 / k))
        assert np.all(np.abs(counts_seen - expected) < 5 * sd), (pair, counts_seen)
        checked += 1
    assert checked >= 20


def test_same_rng_same_triplets_and_shuffled():
    counts = [10] * 8
    emb = clustered(counts, spread=1.0)
    t1, _ = select_triplets(emb, counts, 8, 0.2, "random", np.random.default_rng(42))
    t2, _ = select_triplets(emb, counts, 8, 0.2, "random", np.random.default_rng(42))
    np.testing.assert_array_equal(t1, t2)
    assert not np.all(np.diff(t1[:, 0]) >= 0), "triplets are shuffled"


def test_errors_and_empty_cases():
    emb = clustered([3, 3])
    with pytest.raises(ValueError, match="mode"):
        select_triplets(emb, [3, 3], 2, 0.2, "hardest")
    with pytest.raises(ValueError, match="sums to"):
        select_triplets(emb, [3, 2], 2, 0.2)
    trip, pairs = select_triplets(clustered([1, 1, 1]), [1, 1, 1], 3, 0.2)
    assert trip.shape == (0, 3) and pairs == 0


def test_sample_people_follows_the_original():
    sizes = [50, 3, 40, 7, 41, 2, 60]
    rng = np.random.default_rng(0)
    cls, img, per_class = sample_people(sizes, 3, 10, rng)
    assert len(cls) == 30 == per_class.sum()
    # Contiguous blocks per class, each image index valid and unique within its class.
    bounds = np.cumsum(per_class)[:-1]
    for block_cls, block_img in zip(np.split(cls, bounds), np.split(img, bounds), strict=True):
        assert len(set(block_cls.tolist())) == 1
        assert len(set(block_img.tolist())) == len(block_img)
        assert block_img.max() < sizes[block_cls[0]]
    assert np.all(per_class <= 10)
    # Small classes make it take more identities than people_per_batch.
    cls, _, per_class = sample_people([2] * 10, 3, 10, rng)
    assert len(per_class) == 10 and per_class.sum() == 20  # the dataset runs out: no crash
