"""Make a pairs file for any class-per-folder image set, and the ``facenet pairs`` job.

The file formats (LFW and path-based), reading, writing and resolving live in
``facenet_cli.data.pairs_file``; their names are re-exported here, where most callers look.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from facenet_cli.data.dataset import ImageClass, get_dataset
from facenet_cli.data.pairs_file import (
    LFW_PAIRS,
    AnyPair,
    Pair,
    PathPair,
    ResolvedPairs,
    find_pairs_file,
    lfw_names,
    pair_image_path,
    pairable_images,
    path_images,
    read_pairs,
    resolve_pairs,
    write_pairs,
)
from facenet_cli.errors import InputError

if TYPE_CHECKING:
    from facenet_cli.config import PairsConfig

__all__ = [
    "LFW_PAIRS",
    "AnyPair",
    "Pair",
    "PairsPlan",
    "PathPair",
    "ResolvedPairs",
    "find_pairs_file",
    "make_pairs",
    "pair_image_path",
    "lfw_names",
    "pairable_images",
    "path_images",
    "plan_pairs",
    "read_pairs",
    "resolve_pairs",
    "run_make_pairs",
    "write_pairs",
]

# Identities with at most this many matched combinations are enumerated; larger ones are sampled
# by rejection (then the draw is sparse, so rejections are rare).
_ENUMERATE_LIMIT = 20_000
FORMATS = ("lfw", "paths")

K = TypeVar("K", int, str)


# ---------------------------------------------------------------------------- images left out


def _all_images(dataset: Iterable[ImageClass]) -> list[Path]:
    return [Path(p) for cls in dataset for p in cls.image_paths]


def _left_out(dataset: Sequence[ImageClass], names: set[str]) -> list[Path]:
    """The dataset's images whose ``<identity>/<file>`` is not in ``names``."""
    return [p for p in _all_images(dataset) if f"{p.parent.name}/{p.name}" not in names]


# ------------------------------------------------------------------------------------ sampling


def _as_dataset(
    data: str | os.PathLike[str] | Sequence[ImageClass],
) -> tuple[list[ImageClass], str]:
    if isinstance(data, (str, os.PathLike)):
        return get_dataset(data), os.fspath(data)
    items: list[object] = list(data)
    if items and not all(isinstance(c, ImageClass) for c in items):
        # A sequence of roots, as get_dataset accepts.
        roots = [os.fspath(c) for c in items if isinstance(c, (str, os.PathLike))]
        return get_dataset(roots), ":".join(roots)
    classes = [c for c in items if isinstance(c, ImageClass)]
    source = next(
        (str(Path(c.image_paths[0]).parent.parent) for c in classes if c.image_paths), "dataset"
    )
    return classes, source


def _quotas(capacities: np.ndarray, need: int, rng: np.random.Generator) -> np.ndarray:
    """Spread ``need`` draws over identities as evenly as their capacities allow."""
    quota = np.zeros(len(capacities), dtype=np.int64)
    remaining = need
    left = len(capacities)
    for i in np.argsort(capacities, kind="stable"):
        take = min(int(capacities[i]), remaining // left)
        quota[i] = take
        remaining -= take
        left -= 1
    while remaining > 0:
        spare = np.flatnonzero(quota < capacities)
        chosen = rng.choice(spare, size=min(remaining, len(spare)), replace=False)
        quota[chosen] += 1
        remaining -= len(chosen)
    return quota


Build = Callable[[str, K, str, K], AnyPair]


def _sample_matched(
    images: dict[str, list[K]],
    need: int,
    rng: np.random.Generator,
    build: Build[K],
    where: str,
    hint: str,
) -> list[AnyPair]:
    eligible = [(name, keys) for name, keys in images.items() if len(keys) >= 2]
    if not eligible:
        raise InputError(
            f"{where}: no identity has 2 or more images, so no matched pairs can be made"
        )
    sizes = np.array([len(keys) for _, keys in eligible], dtype=np.int64)
    capacities = sizes * (sizes - 1) // 2
    if capacities.sum() < need:
        raise InputError(
            f"{where}: only {int(capacities.sum())} distinct matched pairs are possible "
            f"({len(eligible)} identities with 2+ images) but {need} are needed; {hint}"
        )
    out: list[AnyPair] = []
    for (name, keys), n, quota in zip(eligible, sizes, _quotas(capacities, need, rng), strict=True):
        if quota == 0:
            continue
        capacity = n * (n - 1) // 2
        if capacity <= _ENUMERATE_LIMIT:
            first, second = np.triu_indices(int(n), k=1)
            chosen = rng.choice(capacity, size=int(quota), replace=False)
            combos = [(int(first[c]), int(second[c])) for c in chosen]
        else:
            seen: set[tuple[int, int]] = set()
            combos = []
            while len(combos) < quota:
                a, b = (int(v) for v in rng.choice(int(n), size=2, replace=False))
                key = (min(a, b), max(a, b))
                if key not in seen:
                    seen.add(key)
                    combos.append(key)
        out.extend(build(name, keys[a], name, keys[b]) for a, b in combos)
    return out


def _sample_mismatched(
    images: dict[str, list[K]],
    need: int,
    rng: np.random.Generator,
    build: Build[K],
    where: str,
    hint: str,
) -> list[AnyPair]:
    names = sorted(images)
    if len(names) < 2:
        raise InputError(
            f"{where}: mismatched pairs need 2 or more identities with images, found {len(names)}"
        )
    sizes = np.array([len(images[n]) for n in names], dtype=np.int64)
    capacity = int((sizes.sum() ** 2 - (sizes**2).sum()) // 2)
    if capacity < need:
        raise InputError(
            f"{where}: only {capacity} distinct mismatched pairs are possible "
            f"({len(names)} identities) but {need} are needed; {hint}"
        )
    seen: set[tuple[int, int, int, int]] = set()
    # Identity pairs are drawn uniformly (as in LFW) so that large identities do not dominate;
    # the attempt cap only matters for nearly exhausted tiny datasets, handled exhaustively below.
    attempts = 0
    max_attempts = 50 * need + 10_000
    while len(seen) < need and attempts < max_attempts:
        attempts += 1
        a, b = (int(v) for v in rng.choice(len(names), size=2, replace=False))
        a, b = min(a, b), max(a, b)
        key = (a, int(rng.integers(sizes[a])), b, int(rng.integers(sizes[b])))
        seen.add(key)
    if len(seen) < need:
        rest = [
            (a, i, b, j)
            for a in range(len(names))
            for b in range(a + 1, len(names))
            for i in range(sizes[a])
            for j in range(sizes[b])
            if (a, i, b, j) not in seen
        ]
        for c in rng.choice(len(rest), size=need - len(seen), replace=False):
            seen.add(rest[int(c)])
    keys = sorted(seen)
    order = rng.permutation(len(keys))
    return [
        build(names[a], images[names[a]][i], names[b], images[names[b]][j])
        for a, i, b, j in (keys[o] for o in order)
    ]


def _sort_key(pair: AnyPair) -> tuple[str | int, ...]:
    if isinstance(pair, PathPair):
        return (pair.path1, pair.path2)
    return (pair.name1, pair.idx1, pair.name2, pair.idx2)


# ------------------------------------------------------------------------------- fold planning


def _fold_fits(sizes: np.ndarray, per_fold: int) -> bool:
    matched = int((sizes * (sizes - 1) // 2).sum())
    mismatched = int((sizes.sum() ** 2 - (sizes**2).sum()) // 2)
    return len(sizes) >= 2 and matched >= per_fold and mismatched >= per_fold


def _disjoint_groups(
    sizes: np.ndarray, nrof_folds: int, per_fold: int, rng: np.random.Generator
) -> list[np.ndarray] | None:
    """Identities (indices into ``sizes``) for each fold, no identity in two folds; or None.

    Identities are dealt in snake order from the largest matched capacity down, which balances
    both the number of identities and the capacity of the folds; when one very large identity
    leaves a fold short, a greedy deal that evens out capacity is tried next.
    """
    if len(sizes) < 2 * nrof_folds:
        return None
    capacity = sizes * (sizes - 1) // 2
    order = rng.permutation(len(sizes))
    order = order[np.argsort(-capacity[order], kind="stable")]
    snake = np.zeros(len(sizes), dtype=np.int64)
    for rank, i in enumerate(order):
        turn, k = divmod(rank, nrof_folds)
        snake[i] = k if turn % 2 == 0 else nrof_folds - 1 - k
    greedy = np.zeros(len(sizes), dtype=np.int64)
    load = np.zeros(nrof_folds, dtype=np.int64)
    count = np.zeros(nrof_folds, dtype=np.int64)
    for i in order:
        # Identities with one image add no matched capacity: spread them by image count.
        g = int(np.lexsort((count, load))[0]) if capacity[i] else int(np.argmin(count))
        greedy[i] = g
        load[g] += capacity[i]
        count[g] += sizes[i]
    for assignment in (snake, greedy):
        groups = [np.flatnonzero(assignment == g) for g in range(nrof_folds)]
        if all(_fold_fits(sizes[g], per_fold) for g in groups):
            return groups
    return None


@dataclass
class PairsPlan:
    """The pairs made for a dataset, and how they were made (for the job's summary)."""

    pairs: list[AnyPair]
    path_based: bool
    disjoint: bool
    images: dict[str, list[int]] | dict[str, list[str]]
    left_out: list[Path] = field(default_factory=list)


def plan_pairs(
    dataset: Sequence[ImageClass],
    nrof_folds: int = 10,
    pairs_per_fold: int = 300,
    seed: int = 666,
    *,
    path_based: bool | None = None,
    disjoint: bool = True,
    source: str = "dataset",
) -> PairsPlan:
    """Make the pairs of ``make_pairs`` and say how: format, disjoint folds, images left out.

    Args:
        dataset: the classes returned by ``get_dataset``.
        nrof_folds: K, the number of folds.
        pairs_per_fold: N, matched pairs per fold (as many mismatched).
        seed: the same seed and images give the same pairs.
        path_based: True for the path-based format, False for LFW, None for LFW when every
            image is named ``<name>/<name>_<idx:04d>.<ext>`` and path-based otherwise.
        disjoint: make identity-disjoint folds when the identities allow it (LFW's own folds
            are); otherwise, or when they do not, every fold draws from all identities.
        source: how to name the data in errors.

    Raises:
        InputError: see ``make_pairs``.
    """
    if nrof_folds < 1 or pairs_per_fold < 1:
        raise InputError(
            f"nrof_folds ({nrof_folds}) and pairs_per_fold ({pairs_per_fold}) must be 1 or more"
        )
    lfw_images = pairable_images(dataset)
    lfw_named = sum(map(len, lfw_images.values()))
    if path_based is None:
        path_based = lfw_named < len(_all_images(dataset))
    elif not path_based and lfw_named == 0 and _all_images(dataset):
        raise InputError(
            f"{source}: no image is named <identity>/<identity>_<number>.<ext>, as the LFW "
            "format needs (--format paths writes any names)"
        )
    if path_based:
        paths = path_images(dataset)
        pairs, disjoint = _draw(paths, nrof_folds, pairs_per_fold, seed, disjoint, source, _paths)
        named = {r for rel in paths.values() for r in rel}
        return PairsPlan(pairs, True, disjoint, paths, _left_out(dataset, named))
    pairs, disjoint = _draw(lfw_images, nrof_folds, pairs_per_fold, seed, disjoint, source, Pair)
    named = lfw_names(dataset, lfw_images)
    return PairsPlan(pairs, False, disjoint, lfw_images, _left_out(dataset, named))


def _paths(name1: str, path1: str, name2: str, path2: str) -> AnyPair:
    return PathPair(path1, path2, name1 == name2)


def _draw(
    images: dict[str, list[K]],
    nrof_folds: int,
    per_fold: int,
    seed: int,
    disjoint: bool,
    source: str,
    build: Build[K],
) -> tuple[list[AnyPair], bool]:
    hint = f"lower --pairs-per-fold ({per_fold}) or --nrof-folds ({nrof_folds})"
    out: list[AnyPair] = []
    if disjoint:
        names = list(images)
        sizes = np.array([len(images[n]) for n in names], dtype=np.int64)
        groups = _disjoint_groups(sizes, nrof_folds, per_fold, np.random.default_rng(seed))
        if groups is not None:
            rng = np.random.default_rng(seed)
            for fold, group in enumerate(groups):
                members = {names[i]: images[names[i]] for i in group}
                where = f"{source} (fold {fold + 1})"
                matched = _sample_matched(members, per_fold, rng, build, where, hint)
                mismatched = _sample_mismatched(members, per_fold, rng, build, where, hint)
                out.extend(sorted(matched, key=_sort_key))
                out.extend(sorted(mismatched, key=_sort_key))
            return out, True
    need = nrof_folds * per_fold
    rng = np.random.default_rng(seed)
    matched = _sample_matched(images, need, rng, build, source, hint)
    mismatched = _sample_mismatched(images, need, rng, build, source, hint)
    matched = [matched[i] for i in rng.permutation(len(matched))]
    for fold in range(nrof_folds):
        part = slice(fold * per_fold, (fold + 1) * per_fold)
        out.extend(sorted(matched[part], key=_sort_key))
        out.extend(sorted(mismatched[part], key=_sort_key))
    return out, False


def make_pairs(
    data_dir_or_dataset: str | os.PathLike[str] | Sequence[ImageClass],
    nrof_folds: int = 10,
    pairs_per_fold: int = 300,
    seed: int = 666,
    *,
    path_based: bool | None = None,
    disjoint: bool = True,
) -> list[AnyPair]:
    """Generate a balanced pairs list for any class-per-folder image set.

    Each of the ``nrof_folds`` folds holds ``pairs_per_fold`` matched pairs followed by as many
    mismatched pairs, every pair distinct. As in LFW, a person appears in one fold only when the
    identities allow it (``disjoint``). Matched pairs are spread as evenly over identities as
    their image counts allow; mismatched pairs draw two identities uniformly, then one image of
    each. Within a fold lines are sorted, as in LFW. The pairs are LFW :class:`Pair` when every
    image is named ``<name>/<name>_<idx:04d>.<ext>``, :class:`PathPair` otherwise (see
    ``plan_pairs`` for ``path_based``).

    Args:
        data_dir_or_dataset: an aligned folder (several roots joined with ``:``) or the classes
            returned by ``get_dataset``.
        nrof_folds: K, the number of folds.
        pairs_per_fold: N, matched pairs per fold (as many mismatched).
        seed: the same seed and images give the same pairs.
        path_based: force the path-based (True) or the LFW (False) format.
        disjoint: try identity-disjoint folds first.

    Returns:
        ``nrof_folds * 2 * pairs_per_fold`` pairs, fold by fold, ready for ``write_pairs``.

    Raises:
        InputError: the folder is missing or empty, no identity has 2 images, there are fewer
            than 2 identities, or the images cannot supply that many distinct pairs.
    """
    dataset, source = _as_dataset(data_dir_or_dataset)
    plan = plan_pairs(
        dataset,
        nrof_folds,
        pairs_per_fold,
        seed,
        path_based=path_based,
        disjoint=disjoint,
        source=source,
    )
    return plan.pairs


# ------------------------------------------------------------------------------------- the job


def _image_key(pair: AnyPair) -> list[tuple[str, str | int]]:
    if isinstance(pair, PathPair):
        return [("", pair.path1), ("", pair.path2)]
    return [(pair.name1, pair.idx1), (pair.name2, pair.idx2)]


def _identity_names(pair: AnyPair) -> tuple[str, str]:
    if isinstance(pair, PathPair):
        return pair.path1.split("/", 1)[0], pair.path2.split("/", 1)[0]
    return pair.name1, pair.name2


def run_make_pairs(config: PairsConfig) -> list[AnyPair]:
    """The ``facenet pairs`` job: make a pairs file for ``config.data_dir`` and summarise it."""
    from rich.console import Console
    from rich.table import Table

    dataset, source = _as_dataset(config.data_dir)
    path_based = None if config.format is None else config.format == "paths"
    plan = plan_pairs(
        dataset,
        config.nrof_folds,
        config.pairs_per_fold,
        config.seed,
        path_based=path_based,
        source=source,
    )
    write_pairs(config.out, plan.pairs, config.nrof_folds, config.pairs_per_fold)

    images = plan.images
    pairs = plan.pairs
    used_ids = {n for p in pairs for n in _identity_names(p)}
    used_images = {k for p in pairs for k in _image_key(p)}
    n_matched = sum(p.issame for p in pairs)
    table = Table(title=f"Pairs written to {config.out}", show_header=False, title_justify="left")
    table.add_row("source", source)
    table.add_row(
        "format",
        "paths (relative to the data folder)" if plan.path_based else "LFW (<name> <idx>)",
    )
    folds = (
        f"{config.nrof_folds} x ({config.pairs_per_fold} matched + "
        f"{config.pairs_per_fold} mismatched), "
    )
    if plan.disjoint:
        folds += "identity-disjoint (a person appears in one fold only)"
    else:
        folds += (
            "sharing identities: too few identities or images for "
            f"{config.nrof_folds} identity-disjoint folds of this size"
        )
    table.add_row("folds", folds)
    table.add_row(
        "pairs", f"{len(pairs)} ({n_matched} matched, {len(pairs) - n_matched} mismatched)"
    )
    table.add_row(
        "identities",
        f"{len(used_ids)} used of {len(images)} "
        f"({sum(len(v) >= 2 for v in images.values())} with 2+ images)",
    )
    table.add_row("images", f"{len(used_images)} used of {sum(len(v) for v in images.values())}")
    if plan.left_out:
        table.add_row(
            "left out",
            f"{len(plan.left_out)} of {len(_all_images(dataset))} images, which this format "
            f"cannot name (--format paths names every file), e.g. {plan.left_out[0]}",
        )
    table.add_row("seed", str(config.seed))
    Console().print(table)
    return pairs
