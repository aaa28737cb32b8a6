"""LFW pairs files: read, write, resolve to image paths, and make one for any aligned folder.

The format (``pairs.txt`` of LFW): an optional header ``K<TAB>N``, then K folds of N matched lines
``name idx1 idx2`` followed by N mismatched lines ``name1 idx1 name2 idx2``. Indices are 1-based
and name the image ``<dir>/<name>/<name>_<idx:04d>.<ext>``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from facenet_cli.data.dataset import IMAGE_EXTENSIONS, ImageClass, get_dataset
from facenet_cli.errors import InputError, StorageError

if TYPE_CHECKING:
    from facenet_cli.config import PairsConfig

# The original tries .jpg then .png; any other recognised extension comes after, in a fixed order.
_EXTENSION_ORDER = (".jpg", ".png") + tuple(sorted(IMAGE_EXTENSIONS - {".jpg", ".png"}))
_INDEXED_STEM = re.compile(r"^(?P<name>.+)_(?P<idx>\d+)$")


@dataclass(frozen=True)
class Pair:
    """One line of a pairs file: two images, each named by identity and 1-based index."""

    name1: str
    idx1: int
    name2: str
    idx2: int

    @property
    def issame(self) -> bool:
        """True for a matched pair (both images of the same identity)."""
        return self.name1 == self.name2

    def to_line(self) -> str:
        """The pair as a tab-separated line of the LFW format (no newline)."""
        if self.issame:
            return f"{self.name1}\t{self.idx1}\t{self.idx2}"
        return f"{self.name1}\t{self.idx1}\t{self.name2}\t{self.idx2}"


@dataclass
class ResolvedPairs:
    """Pairs whose two images exist, as a flat path list (first, second, first, second, ...)."""

    paths: list[Path]
    issame: np.ndarray
    kept: np.ndarray
    missing: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------------------------- reading


def _parse_index(token: str, path: Path, lineno: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise InputError(f"{path}:{lineno}: image index {token!r} is not an integer") from None
    if value < 1:
        raise InputError(f"{path}:{lineno}: image index {value} must be 1 or more (1-based)")
    return value


def read_pairs(path: str | os.PathLike[str]) -> list[Pair]:
    """Read an LFW-format pairs file.

    Accepts an optional ``K<TAB>N`` header (any whitespace), matched lines ``name idx1 idx2``,
    mismatched lines ``name1 idx1 name2 idx2`` and blank lines. When the header is present the
    number of pairs must equal ``K * 2 * N`` (a shorter file is a truncated one).

    Args:
        path: the pairs file.

    Returns:
        The pairs in file order.

    Raises:
        InputError: the file is missing or unreadable, a line is malformed (the message names
            the file and the 1-based line number), the file holds no pairs, or the pair count
            disagrees with the header.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: pairs file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a pairs file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected an LFW pairs file)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read pairs file ({exc.strerror})") from None

    pairs: list[Pair] = []
    header: tuple[int, int] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) == 2 and not pairs and header is None:
            if all(f.isdigit() for f in fields):
                header = (int(fields[0]), int(fields[1]))
                continue
        if len(fields) == 3:
            name, i1, i2 = fields
            pairs.append(
                Pair(name, _parse_index(i1, path, lineno), name, _parse_index(i2, path, lineno))
            )
        elif len(fields) == 4:
            n1, i1, n2, i2 = fields
            pairs.append(
                Pair(n1, _parse_index(i1, path, lineno), n2, _parse_index(i2, path, lineno))
            )
        else:
            shown = line.strip()
            if len(shown) > 60:
                shown = shown[:57] + "..."
            raise InputError(
                f"{path}:{lineno}: expected 'name idx1 idx2' or 'name1 idx1 name2 idx2', "
                f"got {len(fields)} fields: {shown!r}"
            )
    if not pairs:
        raise InputError(f"{path}: no pairs in file")
    if header is not None:
        folds, per_fold = header
        if folds * 2 * per_fold != len(pairs):
            raise InputError(
                f"{path}: header says {folds} folds x 2 x {per_fold} = {folds * 2 * per_fold} "
                f"pairs but the file has {len(pairs)}"
            )
    return pairs


# ------------------------------------------------------------------------------------- writing


def write_pairs(
    path: str | os.PathLike[str],
    pairs: Sequence[Pair],
    nrof_folds: int,
    pairs_per_fold: int,
) -> Path:
    """Write pairs in the LFW format with a ``K<TAB>N`` header.

    The pairs are written in the given order (``make_pairs`` already orders them fold by fold,
    matched lines first). The file is written to a temporary name and renamed, so a crash never
    leaves a half-written pairs file behind.

    Args:
        path: the file to write (parent directories are created).
        pairs: ``nrof_folds * 2 * pairs_per_fold`` pairs.
        nrof_folds: K of the header.
        pairs_per_fold: N of the header (matched pairs per fold, as many mismatched).

    Returns:
        The path written.

    Raises:
        ValueError: the number of pairs does not match the header.
        StorageError: the file cannot be written.
    """
    path = Path(path)
    if len(pairs) != nrof_folds * 2 * pairs_per_fold:
        raise ValueError(
            f"{len(pairs)} pairs do not fill {nrof_folds} folds of 2 x {pairs_per_fold}"
        )
    lines = [f"{nrof_folds}\t{pairs_per_fold}"] + [p.to_line() for p in pairs]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write pairs file ({exc.strerror})") from None
    return path


# ----------------------------------------------------------------------------------- resolving


def pair_image_path(lfw_dir: str | os.PathLike[str], name: str, idx: int) -> Path | None:
    """The image ``<lfw_dir>/<name>/<name>_<idx:04d>.<ext>``, trying .jpg, then .png, then others.

    Returns:
        The first existing file, or None.
    """
    stem = Path(lfw_dir) / name / f"{name}_{idx:04d}"
    for ext in _EXTENSION_ORDER:
        candidate = stem.with_name(stem.name + ext)
        if candidate.is_file():
            return candidate
    return None


class _FolderIndex:
    """Lists each identity folder once (one directory scan instead of a stat per extension)."""

    def __init__(self, lfw_dir: Path) -> None:
        self.lfw_dir = lfw_dir
        self._folders: dict[str, dict[str, Path]] = {}

    def lookup(self, name: str, idx: int) -> Path | None:
        files = self._folders.get(name)
        if files is None:
            files = self._scan(name)
            self._folders[name] = files
        stem = f"{name}_{idx:04d}"
        for ext in _EXTENSION_ORDER:
            hit = files.get(stem + ext)
            if hit is not None:
                return hit
        return None

    def _scan(self, name: str) -> dict[str, Path]:
        folder = self.lfw_dir / name
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return {}
        files: dict[str, Path] = {}
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            # Keep the exact extension order of pair_image_path: lower-case it only for lookup.
            key = stem + ext.lower()
            if ext.lower() in IMAGE_EXTENSIONS and key not in files:
                files[key] = Path(entry.path)
        return files


def resolve_pairs(
    lfw_dir: str | os.PathLike[str], pairs: Sequence[Pair], strict: bool = False
) -> ResolvedPairs:
    """Map pairs to image paths, skipping (or if ``strict`` rejecting) pairs missing an image.

    Args:
        lfw_dir: the aligned image folder.
        pairs: pairs as read by ``read_pairs``.
        strict: raise on the first missing image instead of skipping its pair.

    Returns:
        ``paths`` (two per kept pair), ``issame`` and ``kept`` (indices into ``pairs``) of the kept
        pairs, and ``missing``: each missing image once, in order of first use, named with the
        ``.png`` extension of aligned folders.

    Raises:
        InputError: ``lfw_dir`` is not a directory, or ``strict`` and an image is missing.
    """
    root = Path(lfw_dir)
    if not root.is_dir():
        raise InputError(f"{root}: image directory not found")
    index = _FolderIndex(root)
    paths: list[Path] = []
    issame: list[bool] = []
    kept: list[int] = []
    missing: dict[Path, None] = {}
    for i, pair in enumerate(pairs):
        p1 = index.lookup(pair.name1, pair.idx1)
        p2 = index.lookup(pair.name2, pair.idx2)
        if p1 is None or p2 is None:
            for p, name, idx in ((p1, pair.name1, pair.idx1), (p2, pair.name2, pair.idx2)):
                if p is None:
                    expected = root / name / f"{name}_{idx:04d}.png"
                    if strict:
                        raise InputError(
                            f"{expected}: image of pair {i + 1} not found "
                            f"(tried {', '.join(_EXTENSION_ORDER[:2])} and other image types)"
                        )
                    missing[expected] = None
            continue
        paths.extend((p1, p2))
        issame.append(pair.issame)
        kept.append(i)
    return ResolvedPairs(
        paths=paths,
        issame=np.asarray(issame, dtype=bool),
        kept=np.asarray(kept, dtype=np.int64),
        missing=list(missing),
    )


# -------------------------------------------------------------------------------------- making

# Identities with at most this many matched combinations are enumerated; larger ones are sampled
# by rejection (then the draw is sparse, so rejections are rare).
_ENUMERATE_LIMIT = 20_000


def pairable_images(dataset: Iterable[ImageClass]) -> dict[str, list[int]]:
    """The 1-based indices of each identity's images that a pairs file can name.

    A pairs line can only name ``<name>/<name>_<idx>.<ext>``, so other files (e.g. the
    ``<name>_0001_1.png`` of a multi-face alignment) and identities whose name contains
    whitespace are left out. Identities with no such image are omitted.
    """
    out: dict[str, set[int]] = {}
    for cls in dataset:
        if not cls.name or any(ch.isspace() for ch in cls.name):
            continue
        for path in cls.image_paths:
            match = _INDEXED_STEM.match(Path(path).stem)
            if not match or match["name"] != cls.name:
                continue
            idx = int(match["idx"])
            # Pairs name images as <name>_<idx:04d>: "a_1.png" could never be found again.
            if idx >= 1 and Path(path).stem == f"{cls.name}_{idx:04d}":
                out.setdefault(cls.name, set()).add(idx)
    return {name: sorted(idxs) for name, idxs in out.items()}


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


def _sample_matched(
    images: dict[str, list[int]], need: int, rng: np.random.Generator, source: str, hint: str
) -> list[Pair]:
    eligible = [(name, idxs) for name, idxs in images.items() if len(idxs) >= 2]
    if not eligible:
        raise InputError(
            f"{source}: no identity has 2 or more images named <name>_<idx>, "
            "so no matched pairs can be made"
        )
    sizes = np.array([len(idxs) for _, idxs in eligible], dtype=np.int64)
    capacities = sizes * (sizes - 1) // 2
    if capacities.sum() < need:
        raise InputError(
            f"{source}: only {int(capacities.sum())} distinct matched pairs are possible "
            f"({len(eligible)} identities with 2+ images) but {need} are needed; {hint}"
        )
    out: list[Pair] = []
    for (name, idxs), n, quota in zip(eligible, sizes, _quotas(capacities, need, rng), strict=True):
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
        out.extend(Pair(name, idxs[a], name, idxs[b]) for a, b in combos)
    return out


def _sample_mismatched(
    images: dict[str, list[int]], need: int, rng: np.random.Generator, source: str, hint: str
) -> list[Pair]:
    names = sorted(images)
    if len(names) < 2:
        raise InputError(
            f"{source}: mismatched pairs need 2 or more identities with images named "
            f"<name>_<idx>, found {len(names)}"
        )
    sizes = np.array([len(images[n]) for n in names], dtype=np.int64)
    capacity = int((sizes.sum() ** 2 - (sizes**2).sum()) // 2)
    if capacity < need:
        raise InputError(
            f"{source}: only {capacity} distinct mismatched pairs are possible "
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
        Pair(names[a], images[names[a]][i], names[b], images[names[b]][j])
        for a, i, b, j in (keys[o] for o in order)
    ]


def make_pairs(
    data_dir_or_dataset: str | os.PathLike[str] | Sequence[ImageClass],
    nrof_folds: int = 10,
    pairs_per_fold: int = 300,
    seed: int = 666,
) -> list[Pair]:
    """Generate a balanced LFW-style pairs list for any class-per-folder image set.

    Each of the ``nrof_folds`` folds holds ``pairs_per_fold`` matched pairs followed by as many
    mismatched pairs, every pair distinct. Matched pairs are spread as evenly over identities as
    their image counts allow; mismatched pairs draw two identities uniformly, then one image of
    each. Within a fold lines are sorted by name, as in LFW. Only images named
    ``<name>_<idx>.<ext>`` can be named by a pairs file (see ``pairable_images``).

    Args:
        data_dir_or_dataset: an aligned folder (several roots joined with ``:``) or the classes
            returned by ``get_dataset``.
        nrof_folds: K, the number of folds.
        pairs_per_fold: N, matched pairs per fold (as many mismatched).
        seed: the same seed and images give the same pairs.

    Returns:
        ``nrof_folds * 2 * pairs_per_fold`` pairs, fold by fold, ready for ``write_pairs``.

    Raises:
        InputError: the folder is missing or empty, no identity has 2 images, there are fewer
            than 2 identities, or the images cannot supply that many distinct pairs.
    """
    if nrof_folds < 1 or pairs_per_fold < 1:
        raise InputError(
            f"nrof_folds ({nrof_folds}) and pairs_per_fold ({pairs_per_fold}) must be 1 or more"
        )
    dataset, source = _as_dataset(data_dir_or_dataset)
    images = pairable_images(dataset)
    need = nrof_folds * pairs_per_fold
    hint = f"lower --pairs-per-fold ({pairs_per_fold}) or --nrof-folds ({nrof_folds})"
    rng = np.random.default_rng(seed)
    matched = _sample_matched(images, need, rng, source, hint)
    mismatched = _sample_mismatched(images, need, rng, source, hint)
    matched = [matched[i] for i in rng.permutation(len(matched))]
    out: list[Pair] = []
    for fold in range(nrof_folds):
        part = slice(fold * pairs_per_fold, (fold + 1) * pairs_per_fold)
        out.extend(sorted(matched[part], key=lambda p: (p.name1, p.idx1, p.idx2)))
        out.extend(sorted(mismatched[part], key=lambda p: (p.name1, p.idx1, p.name2, p.idx2)))
    return out


def run_make_pairs(config: PairsConfig) -> list[Pair]:
    """The ``facenet pairs`` job: make a pairs file for ``config.data_dir`` and summarise it."""
    from rich.console import Console
    from rich.table import Table

    dataset, source = _as_dataset(config.data_dir)
    pairs = make_pairs(dataset, config.nrof_folds, config.pairs_per_fold, config.seed)
    write_pairs(config.out, pairs, config.nrof_folds, config.pairs_per_fold)

    images = pairable_images(dataset)
    used_ids = {p.name1 for p in pairs} | {p.name2 for p in pairs}
    used_images = {(p.name1, p.idx1) for p in pairs} | {(p.name2, p.idx2) for p in pairs}
    n_matched = sum(p.issame for p in pairs)
    table = Table(title=f"Pairs written to {config.out}", show_header=False, title_justify="left")
    table.add_row("source", source)
    table.add_row(
        "folds",
        f"{config.nrof_folds} x ({config.pairs_per_fold} matched + "
        f"{config.pairs_per_fold} mismatched)",
    )
    table.add_row(
        "pairs", f"{len(pairs)} ({n_matched} matched, {len(pairs) - n_matched} mismatched)"
    )
    table.add_row(
        "identities",
        f"{len(used_ids)} used of {len(images)} "
        f"({sum(len(v) >= 2 for v in images.values())} with 2+ images)",
    )
    table.add_row("images", f"{len(used_images)} used of {sum(len(v) for v in images.values())}")
    table.add_row("seed", str(config.seed))
    Console().print(table)
    return pairs
