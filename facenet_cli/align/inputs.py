"""The inputs of an alignment run: every file of every class folder, and the ``--shard`` split."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from facenet_cli.errors import InputError


@dataclass(frozen=True)
class AlignInput:
    """One input image and where its crops go."""

    rel: str  # class/file, POSIX separators
    path: Path
    out_dir: Path
    stem: str
    sig: str = ""  # size and mtime: an input changed since its record is done again


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        i_text, n_text = spec.split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard {spec!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {spec!r}: need 0 <= I < N")
    return index, count


def in_shard(rel: str, index: int, count: int) -> bool:
    """Stable partition by a hash of the relative path: the same on every machine and run."""
    return count == 1 or zlib.crc32(rel.encode("utf-8")) % count == index


def _check_output_place(input_dir: Path, output_dir: Path) -> None:
    """The crops must not land where the next run would read them as photos: in the input
    folder itself or in one of its identity folders (a folder directly inside it is left out
    of the identities below).

    Raises:
        InputError: the output folder is the input folder or inside an identity folder.
    """
    try:
        rel = Path(os.path.realpath(output_dir)).relative_to(os.path.realpath(input_dir))
    except ValueError:
        return  # elsewhere
    if len(rel.parts) == 1:
        return
    where = "the input folder" if not rel.parts else f"inside {input_dir / rel.parts[0]}"
    raise InputError(
        f"{output_dir}: the output folder is {where}, where its crops would be read as photos "
        "next time; choose a folder outside it"
    )


def list_inputs(input_dir: Path, output_dir: Path) -> list[AlignInput]:
    """``scan_inputs`` without the folders found inside class folders."""
    return scan_inputs(input_dir, output_dir)[0]


def scan_inputs(input_dir: Path, output_dir: Path) -> tuple[list[AlignInput], list[Path]]:
    """Every visible file of every class folder, sorted: images and non-images alike; and the
    folders inside class folders, which are not read (``dataset.subfolder_warning``).

    What is an image is decided by content (``data.images.scan_class_folder``): Netpbm, TIFF or
    extension-less photos are aligned like JPEGs, and every other file is an input too, so that
    it is counted and listed in ``failures.txt`` with its reason instead of dropped unseen.

    Raises:
        InputError: the input folder is missing or holds no class folders with images.
    """
    from facenet_cli.data.dataset import subfolder_warning
    from facenet_cli.data.images import scan_class_folder

    if input_dir.exists() and not input_dir.is_dir():
        raise InputError(f"{input_dir}: not a directory (expected <root>/<identity>/<image>)")
    if not input_dir.is_dir():
        raise InputError(f"{input_dir}: input directory not found")
    _check_output_place(input_dir, output_dir)
    try:
        entries = list(os.scandir(input_dir))
    except OSError as exc:
        raise InputError(f"{input_dir}: cannot list directory ({exc.strerror})") from None
    # An output folder inside the input folder is not a class (its box and failures files would
    # otherwise become inputs of the next run).
    out_real = os.path.realpath(output_dir)
    classes = sorted(
        e.name
        for e in entries
        if e.name[0] != "." and _is_dir(e) and os.path.realpath(e.path) != out_real
    )
    if not classes:
        raise InputError(f"{input_dir}: no class sub-folders (expected <root>/<identity>/<image>)")
    out: list[AlignInput] = []
    nested: list[Path] = []
    images = others = 0
    for cls in classes:
        try:
            listed = scan_class_folder(input_dir / cls)
        except OSError:
            continue
        images += len(listed.images)
        others += len(listed.non_images)
        nested.extend(listed.subfolders)
        paths = sorted(listed.images + listed.non_images, key=lambda p: p.name)
        used: set[str] = set()
        for path in paths:
            stem = _output_stem(path.name, used)
            used.add(stem)
            rel = f"{cls}/{path.name}"
            out.append(AlignInput(rel, path, output_dir / cls, stem, _signature(path)))
    if not images:
        detail = f" ({others} other files, none decodes as an image)" if others else ""
        if nested:
            detail += f"; {subfolder_warning(nested)}"
        raise InputError(f"{input_dir}: no images found in {len(classes)} class folders{detail}")
    return out, nested


def _output_stem(name: str, used: set[str]) -> str:
    """The crop's file stem: the input's, made distinct when ``a.jpg`` and ``a.png`` share it."""
    stem, ext = os.path.splitext(name)
    if stem not in used:
        return stem
    # The second of a.jpg / a.png / a gets a_png / a_file: no two inputs share an output.
    base = f"{stem}_{ext.lstrip('.').lower() or 'file'}"
    candidate, k = base, 2
    while candidate in used:
        candidate, k = f"{base}{k}", k + 1
    return candidate


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``entry.is_dir()``, false for entries that cannot be resolved (a symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _signature(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "unreadable"
    return f"{st.st_size}:{st.st_mtime_ns}"
