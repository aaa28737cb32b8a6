"""The field's verification benchmarks, by name: where each keeps its pairs and how many folds.

A benchmark is one row of :data:`BENCHMARKS`. Its data can be given three ways, told apart by
content, not by the benchmark's name:

* an insightface verification pack (``lfw.bin``, ``cfp_fp.bin``, ...; ``verification_pack``);
* the CFP distribution folder (``Protocol/Split/FF|FP/01..10/same.txt|diff.txt`` with
  ``Protocol/Pair_list_F.txt`` and ``Pair_list_P.txt``) for ``cfp_ff`` and ``cfp_fp``;
* an image folder with its pairs file (or the pairs file itself), in the benchmark's pairs style
  (a row of :data:`PAIRS_STYLES`): LFW's ``pairs.txt`` (or the path-based format), the
  CALFW / CPLFW two-lines-per-pair ``name.jpg label`` files, or AgeDB's ``path1 path2 1|0``.

Every benchmark's pairs come fold by fold in contiguous folds (10 for all of them), so one
protocol serves them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from facenet_cli.data.pairs_file import AnyPair, PathPair, find_pairs_file, read_pairs
from facenet_cli.data.verification_pack import VerificationPack, is_pack_file, read_pack
from facenet_cli.errors import InputError

# ---------------------------------------------------------------------------------- pairs styles


def _read_text(path: Path) -> list[tuple[int, list[str]]]:
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
    rows = [(n, line.split()) for n, line in enumerate(text.splitlines(), start=1)]
    return [(n, f) for n, f in rows if f and not f[0].startswith("#")]


def _label(token: str, path: Path, lineno: int) -> bool:
    try:
        return int(token) != 0
    except ValueError:
        raise InputError(f"{path}:{lineno}: the label must be an integer, got {token!r}") from None


def read_two_line_pairs(path: Path) -> list[AnyPair]:
    """CALFW / CPLFW pairs: two lines per pair, ``file label``; a label of 0 marks a mismatched
    pair, any other (the identity's number) a matched one."""
    rows = _read_text(path)
    if not rows:
        raise InputError(f"{path}: no pairs in file")
    if len(rows) % 2:
        raise InputError(f"{path}: {len(rows)} lines; this style takes two lines per pair")
    pairs: list[AnyPair] = []
    for (n1, f1), (n2, f2) in zip(rows[0::2], rows[1::2], strict=True):
        for n, f in ((n1, f1), (n2, f2)):
            if len(f) != 2:
                raise InputError(f"{path}:{n}: expected 'file label', got {len(f)} fields")
        same1, same2 = _label(f1[1], path, n1), _label(f2[1], path, n2)
        if same1 != same2:
            raise InputError(f"{path}:{n2}: the two lines of a pair disagree on matched or not")
        pairs.append(PathPair(f1[0], f2[0], same1))
    return pairs


def read_labelled_pairs(path: Path) -> list[AnyPair]:
    """AgeDB-style pairs: one line per pair, ``path1 path2 label`` with label 1 (matched) or 0."""
    rows = _read_text(path)
    if not rows:
        raise InputError(f"{path}: no pairs in file")
    pairs: list[AnyPair] = []
    for n, f in rows:
        if len(f) != 3 or f[2] not in ("0", "1"):
            raise InputError(f"{path}:{n}: expected 'path1 path2 1|0', got {' '.join(f)[:80]!r}")
        pairs.append(PathPair(f[0], f[1], f[2] == "1"))
    return pairs


PAIRS_STYLES: dict[str, Callable[[Path], list[AnyPair]]] = {
    "lfw": read_pairs,
    "two_line": read_two_line_pairs,
    "labelled": read_labelled_pairs,
}
"""How a pairs file is read, by style name (the ``pairs_style`` of a benchmark)."""


# ------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Benchmark:
    """One named benchmark.

    Attributes:
        name: as given on the command line (``lfw``, ``cfp_fp``, ...).
        title: what the table calls it.
        nrof_folds: contiguous folds of its protocol.
        pairs_style: a key of :data:`PAIRS_STYLES`.
        pairs_files: names its pairs file goes by, looked for in the folder given.
        image_dirs: sub-folders its images may sit in, relative to the pairs file's folder.
        cfp_protocol: ``FF`` or ``FP`` for the CFP layout, else None.
    """

    name: str
    title: str
    nrof_folds: int = 10
    pairs_style: str = "lfw"
    pairs_files: tuple[str, ...] = ("pairs.txt",)
    image_dirs: tuple[str, ...] = (".",)
    cfp_protocol: str | None = None


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("lfw", "LFW"),
    Benchmark("cfp_ff", "CFP-FF", cfp_protocol="FF"),
    Benchmark("cfp_fp", "CFP-FP", cfp_protocol="FP"),
    Benchmark(
        "agedb_30",
        "AgeDB-30",
        pairs_style="labelled",
        pairs_files=("agedb_30_pairs.txt", "pairs_agedb_30.txt", "pairs.txt"),
        image_dirs=(".", "images", "aligned"),
    ),
    Benchmark(
        "calfw",
        "CALFW",
        pairs_style="two_line",
        pairs_files=("pairs_CALFW.txt", "pairs.txt"),
        image_dirs=("aligned images", "images", "."),
    ),
    Benchmark(
        "cplfw",
        "CPLFW",
        pairs_style="two_line",
        pairs_files=("pairs_CPLFW.txt", "pairs.txt"),
        image_dirs=("aligned images", "images", "."),
    ),
)
_BY_NAME = {b.name: b for b in BENCHMARKS}


def benchmark_names() -> list[str]:
    """The registered benchmark names, in table order."""
    return [b.name for b in BENCHMARKS]


def get_benchmark(name: str) -> Benchmark:
    """The row called ``name``.

    Raises:
        InputError: an unknown name (the message lists the known ones).
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(
            f"unknown benchmark {name!r}; known: {', '.join(benchmark_names())}"
        ) from None


# ---------------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class VerificationSet:
    """A benchmark's pairs, ready for the protocol: a pack, or image files with their pairs.

    Attributes:
        benchmark: the row.
        source: what the user gave.
        pack: the verification pack, when given one.
        root: the folder the pairs' paths are relative to (file-based sets).
        pairs: the pairs, in fold order (file-based sets).
        pairs_path: the pairs file they came from (None for the CFP layout and packs).
    """

    benchmark: Benchmark
    source: Path
    pack: VerificationPack | None = None
    root: Path | None = None
    pairs: list[AnyPair] | None = None
    pairs_path: Path | None = None

    @property
    def name(self) -> str:
        return self.benchmark.name

    @property
    def nrof_pairs(self) -> int:
        if self.pack is not None:
            return self.pack.nrof_pairs
        return len(self.pairs or ())


def parse_spec(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` (``--benchmark``) as ``(name, path)``; the name must be registered.

    Raises:
        InputError: no ``=``, or an unknown name.
    """
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise InputError(
            f"--benchmark {spec!r}: expected NAME=PATH, NAME one of {', '.join(benchmark_names())}"
        )
    return get_benchmark(name.strip()).name, Path(path).expanduser()


def _cfp_protocol_dir(root: Path) -> Path | None:
    for candidate in (root, root / "Protocol"):
        if (candidate / "Split").is_dir() and (candidate / "Pair_list_F.txt").is_file():
            return candidate
    return None


def _cfp_pair_list(path: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    for n, f in _read_text(path):
        if len(f) != 2 or not f[0].isdigit():
            raise InputError(f"{path}:{n}: expected 'index path', got {' '.join(f)[:80]!r}")
        out[int(f[0])] = f[1]
    return out


def _existing(root: Path, relative: str) -> str:
    """``relative`` or, when only an aligned ``.png`` of it exists, that one's path."""
    if (root / relative).is_file():
        return relative
    png = str(Path(relative).with_suffix(".png"))
    return png if (root / png).is_file() else relative


def read_cfp(root: Path, benchmark: Benchmark) -> VerificationSet:
    """CFP's own layout: folds ``Split/<FF|FP>/01..10``, each its ``same.txt`` then ``diff.txt``
    (lines ``i,j``: indices into ``Pair_list_F.txt``, and for FP into ``Pair_list_P.txt`` for
    the second image). The lists' paths are relative to the ``Protocol`` folder; where only an
    aligned ``.png`` beside a listed image exists, that one is used.

    Raises:
        InputError: a missing list or split file, a malformed line, an index not in the lists.
    """
    protocol = _cfp_protocol_dir(root)
    if protocol is None or benchmark.cfp_protocol is None:
        raise InputError(
            f"{root}: not the CFP layout (Protocol/Split/FF|FP/01..10 and Pair_list_F.txt)"
        )
    frontal = _cfp_pair_list(protocol / "Pair_list_F.txt")
    second = (
        frontal if benchmark.cfp_protocol == "FF" else _cfp_pair_list(protocol / "Pair_list_P.txt")
    )
    split = protocol / "Split" / benchmark.cfp_protocol
    folds = sorted(p for p in split.iterdir() if p.is_dir()) if split.is_dir() else []
    if not folds:
        raise InputError(f"{split}: no fold folders (01..10)")
    pairs: list[AnyPair] = []
    for fold in folds:
        for label, same in (("same.txt", True), ("diff.txt", False)):
            path = fold / label
            for n, f in _read_text(path):
                parts = "".join(f).split(",")
                if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                    raise InputError(f"{path}:{n}: expected 'i,j', got {' '.join(f)[:40]!r}")
                i, j = (int(p) for p in parts)
                if i not in frontal or j not in second:
                    raise InputError(f"{path}:{n}: index {i},{j} not in the pair lists")
                pairs.append(
                    PathPair(_existing(protocol, frontal[i]), _existing(protocol, second[j]), same)
                )
    return VerificationSet(benchmark, root, root=protocol, pairs=pairs)


def _image_root(folder: Path, benchmark: Benchmark, pairs: Sequence[AnyPair]) -> Path:
    """The first of the benchmark's image folders that holds the first pair's first image."""
    first = pairs[0]
    if not isinstance(first, PathPair):
        return folder  # LFW pairs name <dir>/<name>/<name>_<idx>.<ext> under the folder itself
    for sub in benchmark.image_dirs:
        if (folder / sub / first.path1).is_file():
            return folder / sub
    return folder


def load_benchmark(name: str, path: str | os.PathLike[str]) -> VerificationSet:
    """Benchmark ``name``'s data at ``path``: a pack, the CFP layout, a folder or a pairs file.

    Args:
        name: a registered benchmark.
        path: its data (see the module docstring).

    Returns:
        A :class:`VerificationSet`; a pack's images are still encoded, files still unread.

    Raises:
        InputError: an unknown name, a missing path, data in no layout this benchmark reads,
            an unsafe or malformed pack, a malformed pairs file.
    """
    benchmark = get_benchmark(name)
    path = Path(path)
    if is_pack_file(path):
        return VerificationSet(benchmark, path, pack=read_pack(path))
    if not path.exists():
        raise InputError(f"{path}: no such pack, folder or pairs file (benchmark {name})")
    if benchmark.cfp_protocol is not None:
        return read_cfp(path, benchmark)
    reader = PAIRS_STYLES[benchmark.pairs_style]
    if path.is_file():
        pairs_path, folder = path, path.parent
    else:
        found = [path / f for f in benchmark.pairs_files if (path / f).is_file()]
        if found:
            pairs_path = found[0]
        elif benchmark.pairs_style == "lfw":
            pairs_path = find_pairs_file(path)
        else:
            raise InputError(
                f"{path}: no pairs file for {benchmark.title} "
                f"(looked for {', '.join(benchmark.pairs_files)})"
            )
        folder = path
    pairs = reader(pairs_path)
    return VerificationSet(
        benchmark,
        path,
        root=_image_root(folder, benchmark, pairs),
        pairs=pairs,
        pairs_path=pairs_path,
    )
