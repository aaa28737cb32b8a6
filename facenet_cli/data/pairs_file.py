"""Pairs files: what each format can name, read, write, and resolve pairs to image paths.

Two formats, told apart by the last field of each pair line:

* LFW (``pairs.txt`` of LFW): matched lines ``name idx1 idx2`` and mismatched lines
  ``name1 idx1 name2 idx2``. Indices are 1-based and name ``<dir>/<name>/<name>_<idx:04d>.<ext>``.
* Paths, for folders whose files are named any way: ``path1 path2 same`` or
  ``path1 path2 different``, each path relative to the data folder (``s1/1.png``). Fields are
  separated by tabs, or by spaces when no path contains one.

Both accept an optional first line ``K N`` (K folds of N matched then N mismatched pairs), blank
lines and comment lines starting with ``#``. One file holds one format.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from facenet_cli.data.dataset import IMAGE_EXTENSIONS, ImageClass
from facenet_cli.errors import InputError, StorageError

# The original tries .jpg then .png; any other recognised extension comes after, in a fixed order.
_EXTENSION_ORDER = (".jpg", ".png") + tuple(sorted(IMAGE_EXTENSIONS - {".jpg", ".png"}))
_LABELS = {"same": True, "different": False}
_INDEXED_STEM = re.compile(r"^(?P<name>.+)_(?P<idx>\d+)$")
# The official LFW pairs file (View 2: 10 folds of 300 + 300), shipped with the package.
LFW_PAIRS = Path(__file__).resolve().parent / "lfw_pairs.txt"


@dataclass(frozen=True)
class Pair:
    """One line of an LFW pairs file: two images, each named by identity and 1-based index."""

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


@dataclass(frozen=True)
class PathPair:
    """One line of a path-based pairs file: two paths relative to the data folder and a label."""

    path1: str
    path2: str
    issame: bool

    def to_line(self) -> str:
        """The pair as a tab-separated ``path1 path2 same|different`` line (no newline)."""
        return f"{self.path1}\t{self.path2}\t{'same' if self.issame else 'different'}"


AnyPair = Pair | PathPair


@dataclass
class ResolvedPairs:
    """Pairs whose two images exist, as a flat path list (first, second, first, second, ...)."""

    paths: list[Path]
    issame: np.ndarray
    kept: np.ndarray
    missing: list[Path] = field(default_factory=list)


def writable_path(relative: str) -> bool:
    """True when a relative path can be one field of a path-based pairs line and read back."""
    return (
        bool(relative)
        and relative == relative.strip()
        and not any(ch in relative for ch in "\t\n\r")
        and not relative.startswith("#")
    )


# ------------------------------------------------------------------------ what a file can name


def pairable_images(dataset: Iterable[ImageClass]) -> dict[str, list[int]]:
    """The 1-based indices of each identity's images that an LFW pairs file can name.

    An LFW line can only name ``<name>/<name>_<idx:04d>.<ext>`` with a recognised extension, so
    other files (e.g. the ``<name>_0001_1.png`` of a multi-face alignment) and identities whose
    name contains whitespace are left out. Identities with no such image are omitted.
    """
    out: dict[str, set[int]] = {}
    for cls in dataset:
        if not cls.name or any(ch.isspace() for ch in cls.name):
            continue
        for path in cls.image_paths:
            path = Path(path)
            match = _INDEXED_STEM.match(path.stem)
            if not match or match["name"] != cls.name:
                continue
            idx = int(match["idx"])
            # Pairs name images as <name>_<idx:04d>: "a_1.png" could never be found again.
            if (
                idx >= 1
                and path.stem == f"{cls.name}_{idx:04d}"
                and path.suffix.lower() in IMAGE_EXTENSIONS
            ):
                out.setdefault(cls.name, set()).add(idx)
    return {name: sorted(idxs) for name, idxs in out.items()}


def path_images(dataset: Iterable[ImageClass]) -> dict[str, list[str]]:
    """Each identity's images as ``<identity>/<file>`` paths a path-based line can hold."""
    out: dict[str, list[str]] = {}
    for cls in dataset:
        rel = [f"{cls.name}/{Path(p).name}" for p in cls.image_paths]
        rel = [r for r in rel if writable_path(r)]
        if rel:
            out[cls.name] = rel
    return out


def lfw_names(dataset: Sequence[ImageClass], images: dict[str, list[int]]) -> set[str]:
    """``<identity>/<file>`` of the images an LFW line can name."""
    out: set[str] = set()
    for cls in dataset:
        stems = {f"{cls.name}_{idx:04d}" for idx in images.get(cls.name, ())}
        out.update(
            f"{cls.name}/{p.name}"
            for p in map(Path, cls.image_paths)
            if p.stem in stems and p.suffix.lower() in IMAGE_EXTENSIONS
        )
    return out


# ------------------------------------------------------------------------------------- reading


def _parse_index(token: str, path: Path, lineno: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise InputError(f"{path}:{lineno}: image index {token!r} is not an integer") from None
    if value < 1:
        raise InputError(f"{path}:{lineno}: image index {value} must be 1 or more (1-based)")
    return value


def _shown(line: str) -> str:
    shown = line.strip()
    return repr(shown[:57] + "..." if len(shown) > 60 else shown)


def _lfw_pair(fields: list[str], line: str, path: Path, lineno: int) -> Pair:
    if len(fields) >= 3 and "/" in line:
        # LFW names hold no '/': a path line whose label is misspelt.
        raise InputError(
            f"{path}:{lineno}: the label must be 'same' or 'different', got {fields[-1]!r}"
        )
    if len(fields) == 3:
        name, i1, i2 = fields
        return Pair(name, _parse_index(i1, path, lineno), name, _parse_index(i2, path, lineno))
    if len(fields) == 4:
        n1, i1, n2, i2 = fields
        return Pair(n1, _parse_index(i1, path, lineno), n2, _parse_index(i2, path, lineno))
    raise InputError(
        f"{path}:{lineno}: expected 'name idx1 idx2', 'name1 idx1 name2 idx2' or "
        f"'path1 path2 same|different', got {len(fields)} fields: {_shown(line)}"
    )


def _relative_path(token: str, path: Path, lineno: int) -> str:
    pure = PurePosixPath(token)
    if pure.is_absolute() or ".." in pure.parts or token.startswith("~"):
        raise InputError(
            f"{path}:{lineno}: {token!r} must be a path relative to the data folder, inside it"
        )
    return token


def _path_pair(line: str, path: Path, lineno: int) -> PathPair:
    text = line.strip()
    fields = [f.strip() for f in text.split("\t")] if "\t" in text else text.split()
    fields = [f for f in fields if f]
    if len(fields) != 3:
        raise InputError(
            f"{path}:{lineno}: expected 'path1 path2 same|different' (separate the fields with "
            f"tabs when a path contains spaces), got {len(fields)} fields: {_shown(line)}"
        )
    p1, p2, label = fields
    if label.lower() not in _LABELS:
        raise InputError(f"{path}:{lineno}: the label must be 'same' or 'different', got {label!r}")
    return PathPair(
        _relative_path(p1, path, lineno), _relative_path(p2, path, lineno), _LABELS[label.lower()]
    )


def read_pairs(path: str | os.PathLike[str]) -> list[AnyPair]:
    """Read a pairs file in the LFW or the path-based format (see the module docstring).

    The first pair line decides the format: its last field is ``same`` or ``different`` for the
    path-based one, an index for LFW. When the ``K N`` header is present the number of pairs must
    equal ``K * 2 * N`` (a shorter file is a truncated one).

    Args:
        path: the pairs file.

    Returns:
        The pairs in file order: all :class:`Pair` or all :class:`PathPair`.

    Raises:
        InputError: the file is missing or unreadable, a line is malformed or of the other format
            (the message names the file and the 1-based line number), the file holds no pairs,
            or the pair count disagrees with the header.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: pairs file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a pairs file") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected a pairs file)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read pairs file ({exc.strerror})") from None

    pairs: list[AnyPair] = []
    header: tuple[int, int] | None = None
    first: tuple[bool, int] | None = None  # (path-based, line number) of the first pair
    for lineno, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) == 2 and not pairs and header is None:
            if all(f.isdigit() for f in fields):
                header = (int(fields[0]), int(fields[1]))
                continue
        by_path = fields[-1].lower() in _LABELS
        if first is None:
            first = (by_path, lineno)
        elif by_path != first[0]:
            kind = "path-based" if first[0] else "LFW"
            raise InputError(
                f"{path}:{lineno}: this line is in the other format; the file's pairs are "
                f"{kind} (from line {first[1]}) and one file holds one format"
            )
        if by_path:
            pairs.append(_path_pair(line, path, lineno))
        else:
            pairs.append(_lfw_pair(fields, line, path, lineno))
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


def pairs_header(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The ``K N`` header of a pairs file (K folds of N matched and N mismatched pairs), or
    None for a file without one (or one that cannot be read: :func:`read_pairs` says why)."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                fields = line.split()
                if not fields or fields[0].startswith("#"):
                    continue
                if len(fields) == 2 and all(v.isdigit() for v in fields):
                    return int(fields[0]), int(fields[1])
                return None
    except (OSError, UnicodeDecodeError):
        return None
    return None


def protocol_folds(given: int | None, path: str | os.PathLike[str] | None) -> int:
    """The folds of the verification protocol: ``given`` (``--lfw-nrof-folds``); else the K of
    the pairs file's ``K N`` header, whose pairs come fold by fold (the official file's 10, or
    the folds ``facenet pairs`` drew); else 10."""
    if given is not None:
        return given
    header = pairs_header(path) if path is not None else None
    return header[0] if header is not None and header[0] >= 2 else 10


def find_pairs_file(data_dir: str | os.PathLike[str]) -> Path:
    """The pairs file for ``data_dir`` when none is given.

    ``pairs.txt`` inside the folder, else beside it, else the official LFW pairs file shipped with
    the package (:data:`LFW_PAIRS`), so that an aligned LFW needs no ``--lfw-pairs``.
    """
    data_dir = Path(data_dir)
    for candidate in (data_dir / "pairs.txt", data_dir.parent / "pairs.txt"):
        if candidate.is_file():
            return candidate
    return LFW_PAIRS


# ------------------------------------------------------------------------------------- writing


def write_pairs(
    path: str | os.PathLike[str],
    pairs: Sequence[AnyPair],
    nrof_folds: int,
    pairs_per_fold: int,
) -> Path:
    """Write pairs (either format) with a ``K<TAB>N`` header.

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
        ValueError: the number of pairs does not match the header, or a path cannot be written
            as a field (see :func:`writable_path`).
        StorageError: the file cannot be written.
    """
    path = Path(path)
    if len(pairs) != nrof_folds * 2 * pairs_per_fold:
        raise ValueError(
            f"{len(pairs)} pairs do not fill {nrof_folds} folds of 2 x {pairs_per_fold}"
        )
    for pair in pairs:
        if isinstance(pair, PathPair) and not (
            writable_path(pair.path1) and writable_path(pair.path2)
        ):
            raise ValueError(f"{pair.path1!r} / {pair.path2!r} cannot be written as fields")
    lines = [f"{nrof_folds}\t{pairs_per_fold}"] + [p.to_line() for p in pairs]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise StorageError(f"{path}: cannot write pairs file ({blocked} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
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
        self._paths: dict[str, Path | None] = {}

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

    def lookup_path(self, relative: str) -> Path | None:
        if relative not in self._paths:
            candidate = self.lfw_dir / relative
            self._paths[relative] = candidate if candidate.is_file() else None
        return self._paths[relative]

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
    lfw_dir: str | os.PathLike[str], pairs: Sequence[AnyPair], strict: bool = False
) -> ResolvedPairs:
    """Map pairs to image paths, skipping (or if ``strict`` rejecting) pairs missing an image.

    Args:
        lfw_dir: the aligned image folder (the data folder of path-based pairs).
        pairs: pairs as read by ``read_pairs``.
        strict: raise on the first missing image instead of skipping its pair.

    Returns:
        ``paths`` (two per kept pair), ``issame`` and ``kept`` (indices into ``pairs``) of the kept
        pairs, and ``missing``: each missing image once, in order of first use. A missing LFW
        image is named with the ``.png`` extension of aligned folders, a missing path as written.

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
        if isinstance(pair, PathPair):
            found = [(index.lookup_path(r), root / r) for r in (pair.path1, pair.path2)]
            tried = ""
        else:
            found = [
                (index.lookup(name, idx), root / name / f"{name}_{idx:04d}.png")
                for name, idx in ((pair.name1, pair.idx1), (pair.name2, pair.idx2))
            ]
            tried = f" (tried {', '.join(_EXTENSION_ORDER[:2])} and other image types)"
        (p1, _), (p2, _) = found
        if p1 is None or p2 is None:
            for p, expected in found:
                if p is None:
                    if strict:
                        raise InputError(f"{expected}: image of pair {i + 1} not found{tried}")
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
