"""Discovery of class-per-folder datasets (``<root>/<identity>/<image>``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from facenet_cli.errors import InputError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})


@dataclass(frozen=True)
class ImageClass:
    """One identity: its name and its image paths in sorted order."""

    name: str
    image_paths: tuple[Path, ...]

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
    """True for a visible file with a recognised image extension (any case)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (deterministic on every OS)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(f"{folder}: cannot list directory ({exc.strerror})") from None
    out = []
    for entry in entries:
        path = Path(entry.path)
        try:
            if is_image_file(path) and entry.is_file():
                out.append(path)
        except OSError:
            continue  # a broken entry: reported by whoever reads the images
    return out


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
    and classes with fewer than ``min_images_per_class`` images are dropped.

    Raises:
        InputError: a root is missing or not a directory, has no sub-folders, or has no images.
    """
    dataset: list[ImageClass] = []
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
        classes = [ImageClass(e.name, tuple(list_images(Path(e.path)))) for e in class_dirs]
        if not any(len(c) for c in classes):
            raise InputError(f"{root}: no images found in {len(classes)} class folders")
        dataset.extend(c for c in classes if len(c) >= max(min_images_per_class, 1))
    return dataset


def count_images(dataset: Sequence[ImageClass]) -> int:
    """Total number of images in the dataset."""
    return sum(len(c) for c in dataset)


def paths_and_labels(dataset: Sequence[ImageClass]) -> tuple[list[Path], list[int]]:
    """All image paths, class by class, with the class index of each (the original's order)."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(dataset):
        paths.extend(cls.image_paths)
        labels.extend([label] * len(cls))
    return paths, labels
