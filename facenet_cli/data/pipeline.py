"""``tf.data`` image pipelines: decode, crop, flip, standardise, batch, prefetch.

Training uses random crop / flip when asked; validation uses the original's centre crop (or
pad) to ``image_size``. Decoding runs in parallel and keeps the input order unless shuffling.
Every file the dataset listing counts as an image decodes (``decode_image``'s fallback).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import tensorflow as tf

from facenet_cli.errors import InputError

STANDARDIZATION_MODES = ("per_image", "fixed", "none")

# Marks the error of a file that neither TensorFlow nor the fallback decoder reads; the path and
# the reason follow it, each ended by "|".
_UNDECODABLE = "undecodable image file:"
_UNDECODABLE_DETAIL = re.compile(re.escape(_UNDECODABLE) + r" (?P<path>[^|]*)\|(?P<reason>[^|]*)\|")


# Names TensorFlow's own decoder reads (lower case); other files need the fallback decoder.
TF_NATIVE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp"})
_TF_NATIVE_NAME = r"(?i).*\.(jpe?g|png|gif|bmp|webp)"


def needs_fallback(paths: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether any path is not named like a format TensorFlow's decoder reads (no I/O)."""
    return any(os.path.splitext(os.fspath(p))[1].lower() not in TF_NATIVE_EXTENSIONS for p in paths)


def _decode_other(contents: np.ndarray, path: np.ndarray) -> np.ndarray:
    """OpenCV / Pillow decoding for the formats TensorFlow lacks (runs as a numpy function)."""
    from facenet_cli.data.images import DecodeError, decode_bytes

    try:
        return decode_bytes(bytes(contents))
    except DecodeError as exc:
        name = path.decode("utf-8", "replace") if isinstance(path, bytes) else str(path)
        raise ValueError(f"{_UNDECODABLE} {name}|{exc}|") from None


def decode_image(path: tf.Tensor, *, fallback: bool = False) -> tf.Tensor:
    """Read and decode one image file to uint8 RGB.

    TensorFlow's decoder reads JPEG, PNG (8/16 bit, palette), GIF, BMP and WebP. With
    ``fallback``, a file named otherwise (Netpbm, TIFF, no extension, ...) is decoded by
    ``images.decode_bytes`` (OpenCV, then Pillow) instead, so every file that the dataset
    listing counts as an image decodes here too. The fallback is off unless a dataset needs it
    (``needs_fallback``): the routing costs every element (1.25x on 250 px JPEGs that never
    take the fallback), and inside ``tf.data`` TensorFlow's own decoder is the faster one for
    the common formats (1.97x OpenCV's in a numpy function; ``benchmarks/bench_images.py``).
    Grey images become 3 identical channels and an alpha channel is dropped (as the original
    aligner does).

    Args:
        path: a scalar string tensor.
        fallback: route files not named like a TensorFlow format to the fallback decoder.

    Returns:
        A ``uint8`` tensor of shape ``(H, W, 3)``.
    """
    contents = tf.io.read_file(path)

    def native() -> tf.Tensor:
        return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)

    def other() -> tf.Tensor:
        return tf.numpy_function(_decode_other, [contents, path], tf.uint8, stateful=False)

    # No check of the content before TensorFlow's decoder: any extra op on the file's bytes
    # (a magic-number assertion) slowed decoding ~1.4-2x; ``image_errors`` names a bad file.
    if fallback:
        image = tf.cond(tf.strings.regex_full_match(path, _TF_NATIVE_NAME), native, other)
    else:
        image = native()
    image.set_shape([None, None, 3])
    return image


def standardize(images: tf.Tensor, mode: str) -> tf.Tensor:
    """Standardise raw pixels (0..255, any numeric dtype) to float32.

    Args:
        images: ``(H, W, C)`` or ``(B, H, W, C)`` pixels.
        mode: ``"per_image"`` (zero mean, unit variance per image, the original's default),
            ``"fixed"`` (``(x - 127.5) / 128``) or ``"none"`` (float32 pixels 0..255).

    Raises:
        ValueError: an unknown mode.
    """
    images = tf.cast(images, tf.float32)
    if mode == "per_image":
        return tf.image.per_image_standardization(images)
    if mode == "fixed":
        return (images - 127.5) / 128.0
    if mode == "none":
        return images
    raise ValueError(f"unknown standardization {mode!r}; expected one of {STANDARDIZATION_MODES}")


def _crop(
    image: tf.Tensor, image_size: int, random_crop: bool, seed: tf.Tensor | None
) -> tf.Tensor:
    if not random_crop:
        return tf.image.resize_with_crop_or_pad(image, image_size, image_size)
    shape = tf.shape(image)
    # Images smaller than the crop are padded first, so any input size is accepted.
    image = tf.image.resize_with_crop_or_pad(
        image, tf.maximum(shape[0], image_size), tf.maximum(shape[1], image_size)
    )
    return tf.image.stateless_random_crop(image, [image_size, image_size, 3], seed=seed)


def image_dataset(
    paths: Sequence[str | os.PathLike[str]],
    labels: Sequence[int] | np.ndarray | None = None,
    *,
    image_size: int,
    batch_size: int,
    random_crop: bool = False,
    random_flip: bool = False,
    standardization: str = "per_image",
    shuffle: bool = False,
    seed: int | None = None,
) -> tf.data.Dataset:
    """A batched, prefetched dataset of standardised images.

    Args:
        paths: image files.
        labels: optional integer label per path; the dataset then yields ``(images, labels)``.
        image_size: side of the square output.
        batch_size: images per batch (the last batch may be smaller).
        random_crop: a random ``image_size`` crop (images smaller than it are padded first);
            otherwise a centre crop or pad, as the original does for validation.
        random_flip: mirror left-right with probability 1/2.
        standardization: ``"per_image"``, ``"fixed"`` or ``"none"`` (see ``standardize``).
        shuffle: shuffle all paths, again at every iteration.
        seed: makes shuffling and augmentation reproducible (the sequence of epochs is the same
            from run to run; each iteration still draws new crops and order).

    Returns:
        A dataset yielding float32 ``(B, image_size, image_size, 3)`` batches (with int64 labels
        when given), in input order unless ``shuffle``.

    Raises:
        ValueError: labels of another length than paths, or an unknown standardisation.
    """
    if standardization not in STANDARDIZATION_MODES:
        raise ValueError(
            f"unknown standardization {standardization!r}; expected one of {STANDARDIZATION_MODES}"
        )
    fallback = needs_fallback(paths)
    path_strings = tf.constant([os.fspath(p) for p in paths], dtype=tf.string)
    ds = tf.data.Dataset.from_tensor_slices(path_strings)
    if labels is not None:
        label_array = np.asarray(labels, dtype=np.int64)
        if label_array.shape != (len(paths),):
            raise ValueError(f"{label_array.shape[0]} labels for {len(paths)} paths")
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.from_tensor_slices(label_array)))
    if shuffle:
        ds = ds.shuffle(max(len(paths), 1), seed=seed, reshuffle_each_iteration=True)
    augment = random_crop or random_flip
    if augment:
        # One stateless seed per element: reproducible with ``seed``, fresh on each iteration.
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds))

    def load(path: tf.Tensor, element_seed: tf.Tensor | None) -> tf.Tensor:
        image = decode_image(path, fallback=fallback)
        crop_seed = flip_seed = None
        if element_seed is not None:
            crop_seed, flip_seed = tf.unstack(
                tf.random.experimental.stateless_split(element_seed, num=2)
            )
        image = _crop(image, image_size, random_crop, crop_seed)
        if random_flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        image = standardize(image, standardization)
        image.set_shape([image_size, image_size, 3])
        return image

    def mapper(*element: tf.Tensor) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
        element_seed = element[-1] if augment else None
        item = element[0] if augment else element
        if labels is None:
            path = item if not isinstance(item, tuple) else item[0]
            return load(path, element_seed)
        path, label = item
        return load(path, element_seed), label

    ds = ds.map(
        mapper,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=not (shuffle and seed is None),
    )
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _first_unreadable(paths: Sequence[str | os.PathLike[str]]) -> tuple[Path, str] | None:
    """The first path that does not decode, and why (TensorFlow's errors do not name files)."""
    from facenet_cli.data.images import DecodeError, read_image

    for p in paths:
        try:
            read_image(p)
        except DecodeError as exc:
            return Path(p), str(exc)
    return None


@contextmanager
def image_errors(paths: Sequence[str | os.PathLike[str]] = ()) -> Iterator[None]:
    """Turn TensorFlow's decoding errors while iterating a pipeline into a one-line InputError.

    Use around the loop that consumes ``image_dataset``::

        with image_errors(paths):
            for batch in dataset: ...

    A missing file, and a file the fallback decoder refuses, are named directly; TensorFlow's
    decoder reports without a name, so then the ``paths`` are checked to name the first
    unreadable one and say why.
    """
    try:
        yield
    except tf.errors.NotFoundError as exc:
        first = _clean(exc.message)
        raise InputError(f"{first.split(';')[0]}: image file not found") from None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as exc:
        message = str(exc.message)
        detail = _UNDECODABLE_DETAIL.search(message)
        if detail is not None:
            raise InputError(f"{detail['path']}: unreadable image ({detail['reason']})") from None
        first = _clean(message)[:120]
        bad = _first_unreadable(paths)
        if bad is not None:
            raise InputError(f"{bad[0]}: unreadable image ({bad[1]})") from None
        raise InputError(f"an image could not be decoded ({first})") from None


def _clean(message: str) -> str:
    """The first line of a TensorFlow error without its ``{{function_node ...}}`` prefix."""
    message = re.sub(r"\{\{[^}]*\}\}\s*", "", str(message)).strip()
    message = re.sub(r"\s*\[Op:[^\]]*\].*$", "", message.splitlines()[0] if message else "")
    return message
