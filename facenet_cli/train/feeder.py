"""One long-lived ``tf.data`` pipeline that decodes and augments every batch of a run.

A selection round needs two short pipelines (the sampled images, then the triplet rows) whose
content depends on the model's latest weights. Building a ``tf.data`` pipeline per round costs
a retrace of its map function and a cold start every time; instead the loop puts batches of
paths into a queue and this pipeline decodes them (in parallel, a few batches ahead) in order.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from facenet_cli.data.pipeline import decode_image, standardize

MAX_ROTATION_DEGREES = 10.0


class DecodeFailed(Exception):
    """A batch held an image the pipeline could not decode (the pipeline is done after it).

    Attributes:
        paths: the batch's paths, among which the unreadable ones are.
    """

    def __init__(self, paths: list[str], error: Exception) -> None:
        super().__init__(f"a batch of {len(paths)} images failed to decode: {error}")
        self.paths = paths


def rotate_image(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Rotate about the centre by a random angle in [-10, 10] degrees (edges reflected)."""
    angle = tf.random.stateless_uniform([], seed, -1.0, 1.0) * (MAX_ROTATION_DEGREES * np.pi / 180)
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output pixel (x, y) samples input (a0 x + a1 y + a2, b0 x + b1 y + b2): a centre rotation.
    cx, cy = (w - 1.0) / 2.0, (h - 1.0) / 2.0
    transform = tf.stack([cos, -sin, cx - cos * cx + sin * cy,
                          sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0])  # fmt: skip
    rotated = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[None], transforms=transform[None],
        output_shape=shape[:2], fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )[0]  # fmt: skip
    return tf.cast(tf.clip_by_value(tf.round(rotated), 0.0, 255.0), image.dtype)


def jitter_color(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Random brightness (+-20 %), contrast (0.7..1.3), per-channel gains (0.8..1.2) and, with
    probability 1/5, grayscale; float32 pixels 0..255 out."""
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, num=4))
    x = tf.cast(image, tf.float32)
    gray = tf.image.rgb_to_grayscale(x)
    x = tf.where(tf.random.stateless_uniform([], seeds[0]) < 0.2, tf.tile(gray, [1, 1, 3]), x)
    mean = tf.reduce_mean(x)
    contrast = tf.random.stateless_uniform([], seeds[1], 0.7, 1.3)
    brightness = tf.random.stateless_uniform([], seeds[2], 0.8, 1.2)
    gains = tf.random.stateless_uniform([1, 1, 3], seeds[3], 0.8, 1.2)
    x = ((x - mean) * contrast + mean) * brightness * gains
    return tf.clip_by_value(x, 0.0, 255.0)


class BatchFeeder:
    """Decode, crop, flip and standardise batches of image paths, in the order they are put.

    Args:
        image_size: side of the square output.
        random_crop: a random crop (images smaller than it padded first), else centre crop/pad.
        random_flip: mirror left-right with probability 1/2.
        standardization: ``per_image``, ``fixed`` or ``none``.
        fallback: decode files not named like a TensorFlow format with OpenCV/Pillow
            (``pipeline.needs_fallback``; off, the common formats decode faster).
        random_rotate: rotate by a random angle in [-10, 10] degrees (the original's
            ``--random_rotate``), before the crop.
        random_color: random brightness, contrast, per-channel gains and (one time in five)
            grayscale, so a model trained on grayscale photos meets colour ones unsurprised.
    """

    def __init__(self, image_size: int, *, random_crop: bool, random_flip: bool,
                 standardization: str, random_rotate: bool = False,
                 random_color: bool = False, fallback: bool = False) -> None:  # fmt: skip
        self.image_size = image_size
        self.random_crop = random_crop
        self.random_flip = random_flip
        self.standardization = standardization
        self.random_rotate = random_rotate
        self.random_color = random_color
        self.fallback = fallback
        self._queue: queue.Queue[Any] = queue.Queue()
        self._outstanding: deque[list[str]] = deque()  # paths of the batches not yet taken
        self.decoded = 0  # images put so far: each is decoded once
        signature = (tf.TensorSpec([None], tf.string), tf.TensorSpec([2], tf.int64))
        ds = tf.data.Dataset.from_generator(self._generate, output_signature=signature)
        ds = ds.map(self._load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        self._iterator: Any = iter(ds.prefetch(tf.data.AUTOTUNE))

    def _generate(self) -> Any:
        while True:
            item = self._queue.get()
            if item is None:
                return
            yield item

    def _load_one(self, path: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        size = self.image_size
        image = decode_image(path, fallback=self.fallback)
        crop_seed, flip_seed, rotate_seed, color_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, num=4)
        )
        if self.random_rotate:
            image = rotate_image(image, rotate_seed)
        if self.random_crop:
            shape = tf.shape(image)
            image = tf.image.resize_with_crop_or_pad(
                image, tf.maximum(shape[0], size), tf.maximum(shape[1], size)
            )
            image = tf.image.stateless_random_crop(image, [size, size, 3], seed=crop_seed)
        else:
            image = tf.image.resize_with_crop_or_pad(image, size, size)
        if self.random_flip:
            image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
        if self.random_color:
            image = jitter_color(image, color_seed)
        image = standardize(image, self.standardization)
        image.set_shape([size, size, 3])
        return image

    def _load_batch(self, paths: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        seeds = tf.random.experimental.stateless_split(seed, num=tf.size(paths))
        size = self.image_size
        return tf.map_fn(
            lambda item: self._load_one(item[0], item[1]),
            (paths, seeds),
            fn_output_signature=tf.TensorSpec([size, size, 3], tf.float32),
            parallel_iterations=32,
        )

    def put(self, paths: Sequence[str], batch_size: int, rng: np.random.Generator) -> int:
        """Queue ``paths`` as batches of ``batch_size`` (the last may be smaller).

        Returns:
            The number of batches queued; take each with ``get``.
        """
        batches = [paths[start : start + batch_size] for start in range(0, len(paths), batch_size)]
        return self.put_batches(batches, rng)

    def put_batches(self, batches: Sequence[Sequence[str]], rng: np.random.Generator) -> int:
        """Queue batches of paths as given (each draws one seed from ``rng``, as in ``put``).

        Returns:
            The number of batches queued.
        """
        for batch in batches:
            seed = rng.integers(0, 2**62, size=2, dtype=np.int64)
            self._queue.put((np.asarray(batch, dtype=object), seed))
            self._outstanding.append(list(batch))
            self.decoded += len(batch)
        return len(batches)

    def get(self) -> tf.Tensor:
        """The next decoded batch, float32 ``(B, S, S, 3)``.

        Raises:
            DecodeFailed: an image of this batch could not be decoded (batches come out in the
                order they were put, so the error belongs to this batch).
        """
        paths = self._outstanding.popleft()
        try:
            return next(self._iterator)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
            self._outstanding.clear()
            raise DecodeFailed(paths, exc) from None

    def discard(self) -> None:
        """Take and drop the batches queued but not taken (a round cut short)."""
        while self._outstanding:
            self.get()

    def close(self) -> None:
        """End the pipeline and run it dry before it is freed.

        Freeing a ``tf.data`` iterator while its generator thread is still inside Python can
        deadlock on the interpreter lock at process exit; reading to the end first lets every
        worker thread finish.
        """
        if self._iterator is None:
            return
        self._queue.put(None)
        try:
            for _ in self._iterator:
                pass
        except tf.errors.OpError:
            pass  # a pipeline stopped by a decode error has nothing left to run
        self._iterator = None


def find_unreadable(paths: list[str]) -> list[str]:
    """The paths TensorFlow's decoder cannot read (checked one by one; used after an error)."""
    import tensorflow as tf

    from facenet_cli.data.pipeline import decode_image

    bad = []
    for path in dict.fromkeys(paths):
        try:
            decode_image(tf.constant(path), fallback=True)
        except (tf.errors.OpError, ValueError):
            bad.append(path)
    return bad


def worker_batches(
    graph: Any, paths: Sequence[str], batch_size: int, unit: int
) -> list[tuple[int, int, list[str]]]:
    """``(rows, offset, paths)`` per global batch of ``paths``: its size, where this process's
    part starts, and that part (the whole batch unless the process is one worker of several;
    ``unit=3`` keeps triplets whole)."""
    out = []
    for first in range(0, len(paths), batch_size):
        batch = list(paths[first : first + batch_size])
        start, stop = graph.local_rows(len(batch), unit)
        out.append((len(batch), start, batch[start:stop]))
    return out


def embed_share(
    run: Any, embed: Any, batches: list[tuple[int, int, list[str]]], image_size: int
) -> tuple[np.ndarray, bool]:
    """Embed this worker's part of each global batch (queued with ``run.feed``) across the
    cluster (``embed(part, global_rows, offset)`` is a collective).

    After a decoding error the remaining batches go on with blank rows, so that the other
    workers' collectives still complete; the caller then decides with them what to drop.

    Returns:
        The gathered embeddings of the global batches, and whether decoding failed here.
    """
    parts, failed = [], False
    for nrof_rows, offset, part in batches:
        batch = None
        if not failed:
            try:
                batch = run.take()
            except DecodeFailed:
                failed = True
        if batch is None:
            batch = tf.zeros((len(part), image_size, image_size, 3))
        parts.append(embed(batch, nrof_rows, offset))
    return np.concatenate([np.asarray(p) for p in parts], axis=0), failed
