"""Discovery of class-per-folder datasets (``<root>/<identity>/<image>``).

What counts as an image is decided by ``facenet_cli.data.images.scan_class_folder`` (by content,
not by a list of extensions); the files of a class folder that are not images are kept on each
``ImageClass`` so that commands can report them (``non_image_warning``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facenet_cli.data.images import IMAGE_EXTENSIONS, ClassFolder, has_image_name, scan_class_folder
from facenet_cli.errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "ImageClass", "get_dataset", "list_class_folder", "list_images"]


@dataclass(frozen=True)
class ImageClass:
    """One identity: its name, its image paths in sorted order, and its other files."""

    name: str
    image_paths: tuple[Path, ...]
    non_images: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return len(self.image_paths)


def split_roots(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Split ``root1:root2`` (the original's syntax) or a sequence into expanded paths."""
    if isinstance(spec, str):
        parts = [p for p in spec.split(":") if p]
    elif isinstance(spec, os.PathLike):
        parts = [os.fspath(spec)]
    else:
        parts = [os.fspath(p) for p in spec]
    return [Path(p).expanduser() for p in parts]


def is_image_file(path: Path) -> bool:
    """True for a visible file name with a known image extension (any case); no I/O.

    A name test only: files named otherwise can still be images (see ``list_class_folder``).
    """
    return has_image_name(path.name)


def list_class_folder(folder: Path) -> ClassFolder:
    """The images and the non-image files of one class folder (both sorted by name).

    This is the one discovery rule of the project: an image is a file OpenCV or Pillow can
    decode (Netpbm, TIFF, WebP, extension-less JPEG, ...); see ``images.scan_class_folder``.

    Raises:
        InputError: the folder cannot be listed.
    """
    try:
        return scan_class_folder(folder)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list directory ({exc.strerror})") from None


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic on every OS)."""
    return list(list_class_folder(folder).images)


def _is_visible_dir(entry: os.DirEntry[str]) -> bool:
    """A class folder candidate; an entry that cannot be followed (a symlink loop) is not."""
    if entry.name.startswith("."):
        return False
    try:
        return entry.is_dir()
    except OSError:
        return False


def get_dataset(
    roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    min_images_per_class: int = 0,
) -> list[ImageClass]:
    """Discover the identities under one or more roots.

    Classes are sorted by name within each root and roots are concatenated in the given order
    (as the original does). Empty class folders (e.g. identities whose alignment found no face)
    and classes with fewer than ``min_images_per_class`` images are dropped. Each class keeps
    its non-image files (``non_image_warning`` words them for the user).

    Raises:
        InputError: a root is missing or not a directory, has no sub-folders, or has no images.
    """
    return scan_dataset(roots, min_images_per_class)[0]


def scan_dataset(
    roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    min_images_per_class: int = 0,
) -> tuple[list[ImageClass], list[Path]]:
    """``get_dataset``, and the folders found inside class folders (not read; see
    ``subfolder_warning``), those of dropped classes included.

    Raises:
        InputError: as ``get_dataset``.
    """
    dataset: list[ImageClass] = []
    nested: list[Path] = []
    for root in split_roots(roots):
        if not root.exists():
            raise InputError(f"{root}: dataset directory not found")
        if not root.is_dir():
            raise InputError(f"{root}: not a directory")
        try:
            class_dirs = sorted(
                (e for e in os.scandir(root) if _is_visible_dir(e)), key=lambda e: e.name
            )
        except OSError as exc:
            raise InputError(f"{root}: cannot list directory ({exc.strerror})") from None
        if not class_dirs:
            raise InputError(f"{root}: no class sub-folders (expected <root>/<identity>/<image>)")
        classes = []
        root_nested: list[Path] = []
        for e in class_dirs:
            listed = list_class_folder(Path(e.path))
            classes.append(ImageClass(e.name, listed.images, listed.non_images))
            root_nested.extend(listed.subfolders)
        if not any(len(c) for c in classes):
            others = sum(len(c.non_images) for c in classes)
            detail = f" ({others} other files, none decodes as an image)" if others else ""
            if root_nested:
                detail += f"; {subfolder_warning(root_nested)}"
            raise InputError(f"{root}: no images found in {len(classes)} class folders{detail}")
        dataset.extend(c for c in classes if len(c) >= max(min_images_per_class, 1))
        nested.extend(root_nested)
    return dataset, nested


def paths_and_labels(dataset: Sequence[ImageClass]) -> tuple[list[Path], list[int]]:
    """All image paths, class by class, with the class index of each (the original's order)."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(dataset):
        paths.extend(cls.image_paths)
        labels.extend([label] * len(cls))
    return paths, labels


def non_image_warning(dataset: Sequence[ImageClass]) -> str | None:
    """One line telling how many files in the class folders are not images (None if none)."""
    others = [p for c in dataset for p in c.non_images]
    if not others:
        return None
    return (
        f"{len(others)} file(s) in the class folders are not images and were skipped "
        f"(first: {others[0]})"
    )


def subfolder_warning(subfolders: Sequence[Path]) -> str | None:
    """One line about folders found inside class folders, whose contents are not read (None if
    there are none)."""
    if not subfolders:
        return None
    return (
        f"{len(subfolders)} folder(s) inside the class folders were not read: a class's images "
        f"go directly in <root>/<class>/ (first: {subfolders[0]})"
    )


def non_image_note(root: Path) -> str | None:
    """``non_image_warning`` for the class folders of one image folder (None when it has none).

    For commands that do not list a dataset themselves (``validate`` reads a pairs file).
    """
    try:
        return non_image_warning(get_dataset(root))
    except InputError:
        return None  # the command reports the folder's problem in its own words
