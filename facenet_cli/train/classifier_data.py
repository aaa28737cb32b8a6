"""The image list of classifier training (pure NumPy): filtering, validation split, batch order.

Classifier training (``--loss softmax|arcface|cosface``) has no selection rounds: an epoch is
``epoch_size`` batches taken from one endless stream of labelled images, the concatenation of
one shuffled pass over the training images after another. Pass ``p`` is shuffled with a
generator seeded by ``(seed, p)``, so the images of any global step follow from the step alone
and a resumed run trains on exactly the batches an uninterrupted one would have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from facenet_cli.data.dataset import ImageClass
from facenet_cli.errors import InputError


def split_dataset(
    classes: Sequence[ImageClass],
    split_ratio: float,
    min_nrof_images_per_class: int,
    rng: np.random.Generator,
) -> tuple[list[ImageClass], list[ImageClass]]:
    """The original's ``split_dataset(..., mode='SPLIT_IMAGES')``: hold out images of each class.

    Each class's images are shuffled; ``floor(n * (1 - split_ratio))`` train (at most ``n - 1``)
    and the rest validate. A class whose training part would have fewer than
    ``min_nrof_images_per_class`` images, or no validation image, is left out of both (as in
    the original), so training and validation share one label space.

    Returns:
        ``(train_classes, validation_classes)``, aligned class by class.
    """
    train: list[ImageClass] = []
    val: list[ImageClass] = []
    for cls in classes:
        paths = [cls.image_paths[i] for i in rng.permutation(len(cls.image_paths))]
        n = len(paths)
        split = min(int(math.floor(n * (1.0 - split_ratio))), n - 1)
        if split >= min_nrof_images_per_class and n - split >= 1 and split >= 1:
            train.append(ImageClass(cls.name, tuple(paths[:split])))
            val.append(ImageClass(cls.name, tuple(paths[split:])))
    return train, val


def read_filter_file(path: Path) -> dict[str, float]:
    """``{image file name: distance to its class center}`` from a filter file.

    The original's filter file is HDF5 (``image_list``, ``distance_to_center``) written by its
    ``calculate_filtering_metrics.py``; read here as HDF5 when ``h5py`` is installed, or as an
    ``.npz`` with the same two arrays.

    Raises:
        InputError: the file is missing, unreadable or lacks the two arrays.
    """
    path = Path(path)
    keys = ("image_list", "distance_to_center")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                names, dist = (np.asarray(data[k]) for k in keys)
        else:
            try:
                import h5py
            except ImportError:
                raise InputError(
                    f"{path}: reading an HDF5 filter file needs h5py (pip install h5py), or "
                    "save it as .npz with image_list and distance_to_center"
                ) from None
            with h5py.File(path, "r") as f:
                names, dist = (np.asarray(f[k]) for k in keys)
    except InputError:
        raise
    except KeyError as exc:
        raise InputError(f"{path}: filter file has no {exc} array (needs {', '.join(keys)})") \
            from None  # fmt: skip
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read filter file ({exc})") from None
    texts = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    return {Path(t).name: float(d) for t, d in zip(texts, dist.tolist(), strict=True)}


def filter_dataset(
    classes: Sequence[ImageClass],
    distances: dict[str, float],
    percentile: float,
    min_nrof_images_per_class: int,
) -> list[ImageClass]:
    """The original's ``filter_dataset``: drop images far from their class center.

    Images whose distance is above the ``percentile``-th percentile of all distances are
    removed (images the file does not name are kept), then classes left with fewer than
    ``min_nrof_images_per_class`` images.
    """
    if not distances:
        return list(classes)
    cutoff = float(np.percentile(np.asarray(list(distances.values())), percentile))
    out = []
    for cls in classes:
        kept = tuple(p for p in cls.image_paths if distances.get(Path(p).name, -math.inf) <= cutoff)
        if len(kept) >= max(min_nrof_images_per_class, 1):
            out.append(ImageClass(cls.name, kept))
    return out


def labelled_images(classes: Sequence[ImageClass]) -> tuple[list[str], np.ndarray]:
    """All image paths, class by class, with each one's class index."""
    paths = [str(p) for c in classes for p in c.image_paths]
    labels = np.asarray([i for i, c in enumerate(classes) for _ in c.image_paths], np.int32)
    return paths, labels


def batch_rows(step: int, batch_size: int, nrof_images: int, seed: int) -> np.ndarray:
    """Indices of the images of global ``step`` (0-based) in the endless shuffled stream.

    Raises:
        InputError: there are no images.
    """
    if nrof_images < 1:
        raise InputError("no training images left")
    start = step * batch_size
    rows = np.empty(batch_size, np.int64)
    filled = 0
    while filled < batch_size:
        position = start + filled
        epoch_pass, offset = divmod(position, nrof_images)
        order = np.random.default_rng([seed, epoch_pass]).permutation(nrof_images)
        take = min(batch_size - filled, nrof_images - offset)
        rows[filled : filled + take] = order[offset : offset + take]
        filled += take
    return rows
