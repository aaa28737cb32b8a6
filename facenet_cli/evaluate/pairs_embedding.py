"""Embedding the images of a pairs file (LFW or path-based) and running the protocol on them.

``evaluate_on_pairs`` is the reusable core: the training loop calls it after each epoch with an
in-memory model (keeping the decoded crops in a ``CropCache`` between epochs), and
``facenet validate`` (``validate.py``) calls it with a loaded one.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.cpu import cpu_count
from facenet_cli.errors import InputError
from facenet_cli.evaluate.metrics import (
    EvaluationResult,
    distance,
    evaluate,
    fold_indices,
    metric_id,
)

if TYPE_CHECKING:
    from facenet_cli.data.pairs_file import AnyPair
    from facenet_cli.data.verification_pack import VerificationPack

EmbedFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ValidationReport:
    """The protocol's result and what it was computed on.

    Attributes:
        result: the figures (accuracy, VAL@FAR, ROC, AUC, EER).
        lfw_dir: the image folder.
        pairs_path: the pairs file (None when pairs were passed in directly).
        nrof_pairs_listed: pairs in the file.
        kept: indices (into the file's pairs) of the pairs evaluated.
        missing: images that were not found, each once.
        nrof_images: distinct images read (each embedded once, twice with flips).
        nrof_forward: images through the model, flips included.
        embedding_seconds: wall time of reading and embedding.
        use_flipped_images: whether flipped embeddings were concatenated.
        distances: per evaluated pair, the distance the protocol compared with its fold's
            threshold (after the fold's mean subtraction with ``subtract_mean``).
        pair_images: per evaluated pair, the names of its two images (paths, or
            ``pack.bin#i`` for a verification pack).
        issame: per evaluated pair, its label.
    """

    result: EvaluationResult
    lfw_dir: Path
    pairs_path: Path | None
    nrof_pairs_listed: int
    kept: np.ndarray
    missing: list[Path]
    nrof_images: int
    nrof_forward: int
    embedding_seconds: float
    use_flipped_images: bool
    distances: np.ndarray | None = None
    pair_images: list[tuple[str, str]] | None = None
    issame: np.ndarray | None = None

    @property
    def nrof_pairs_used(self) -> int:
        return int(self.kept.size)

    @property
    def nrof_pairs_skipped(self) -> int:
        return self.nrof_pairs_listed - self.nrof_pairs_used

    @property
    def images_per_second(self) -> float:
        return self.nrof_forward / self.embedding_seconds if self.embedding_seconds > 0 else 0.0

    @property
    def warnings(self) -> list[str]:
        """One line per problem worth telling the user (empty when all went to plan)."""
        out: list[str] = []
        if self.missing:
            first = self.missing[0]
            out.append(
                f"{len(self.missing)} image(s) not found under {self.lfw_dir} (first: {first}): "
                f"skipped {self.nrof_pairs_skipped} of {self.nrof_pairs_listed} pairs, so the "
                "folds no longer equal the official ones (--strict makes this an error)"
            )
        r = self.result
        if r.nrof_unreachable_folds:
            out.append(
                f"FAR={r.far_target:g} is not reached on the training folds of "
                f"{r.nrof_unreachable_folds} of {r.nrof_folds} folds: VAL leaves them out"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the result's figures plus the data they were computed on."""
        return {
            **self.result.to_dict(),
            "lfw_dir": str(self.lfw_dir),
            "pairs": str(self.pairs_path) if self.pairs_path else None,
            "pairs_listed": self.nrof_pairs_listed,
            "pairs_used": self.nrof_pairs_used,
            "pairs_skipped": self.nrof_pairs_skipped,
            "missing_images": [str(p) for p in self.missing],
            "images": self.nrof_images,
            "use_flipped_images": self.use_flipped_images,
            "embedding_seconds": round(self.embedding_seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "warnings": self.warnings,
        }


def _embed_batch(embed: EmbedFn, batch: np.ndarray, flipped: bool) -> np.ndarray:
    if not flipped:
        return np.asarray(embed(batch))
    n = len(batch)
    # One forward pass over the images and their mirrors; the original concatenates the two
    # embeddings (image first) without normalising again.
    both = np.asarray(embed(np.concatenate([batch, batch[:, :, ::-1, :]], axis=0)))
    return np.concatenate([both[:n], both[n:]], axis=1)


@functools.lru_cache(maxsize=4)
def _dataset(paths: tuple[str, ...], image_size: int, batch_size: int) -> Any:
    """The image pipeline for these paths, kept between calls.

    Building a ``tf.data`` pipeline traces its map function (a few hundred milliseconds);
    the training loop validates on the same pairs after every epoch, so it is built once.
    """
    import tensorflow as tf

    from facenet_cli.data.pipeline import image_dataset

    dataset = image_dataset(
        list(paths), image_size=image_size, batch_size=batch_size, standardization="none"
    )
    if not tf.config.list_physical_devices("GPU"):
        # Without an accelerator, decoding and the forward pass share the CPU cores; bounding
        # the decoders to half of them keeps them from preempting the model's intra-op threads
        # (on the 2-core development host: 0.85x instead of 0.73x of the raw forward speed in
        # one alternating measurement; the noisy shared host does not always show it).
        options = tf.data.Options()
        options.threading.private_threadpool_size = max(1, cpu_count() // 2)
        dataset = dataset.with_options(options)
    return dataset


# LFW's 7,701 images as 160 px crops take 0.59 GB; above this the crops are decoded every time.
CROP_CACHE_BYTES = 1 << 30


class CropCache:
    """The decoded crops (uint8) of one list of images, kept from one evaluation to the next.

    The training loop validates on the same pairs after every epoch; decoding those images again
    each time costs as much as the forward pass itself on a CPU. The first evaluation stores the
    crops as they stream past (exact: a centre crop or pad of 8-bit pixels); later ones with the
    same paths and size read them back. A list whose crops would exceed ``max_bytes`` is streamed
    every time, as without a cache.

    Attributes:
        decoded: images decoded so far (for tests and reports).
    """

    def __init__(self, max_bytes: int = CROP_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self.decoded = 0
        self._key: tuple[Any, int] | None = None
        self._crops: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return 0 if self._crops is None else int(self._crops.nbytes)

    def batches(
        self, paths: tuple[str, ...], image_size: int, batch_size: int
    ) -> Iterator[np.ndarray]:
        """Float32 ``(B, S, S, 3)`` batches of the crops of ``paths``, in order."""
        return self.stored(
            paths,
            len(paths),
            image_size,
            lambda: (b.numpy() for b in _dataset(paths, image_size, batch_size)),
            batch_size,
        )

    def stored(
        self,
        source: Any,
        count: int,
        image_size: int,
        decode: Callable[[], Iterable[np.ndarray]],
        batch_size: int,
    ) -> Iterator[np.ndarray]:
        """Batches of ``count`` crops of ``source`` (any hashable key): from the cache when it
        holds them, else from ``decode()`` (storing them as they stream past)."""
        key = (source, image_size)
        if self._key == key and self._crops is not None:
            for start in range(0, count, batch_size):
                yield self._crops[start : start + batch_size].astype(np.float32)
            return
        self._key, self._crops = None, None  # another list: free the old crops first
        fits = count * image_size * image_size * 3 <= self.max_bytes
        crops = np.empty((count, image_size, image_size, 3), np.uint8) if fits else None
        done = 0
        for images in decode():
            self.decoded += len(images)
            if crops is not None:
                crops[done : done + len(images)] = images
            done += len(images)
            yield images
        if crops is not None and done == count:
            self._key, self._crops = key, crops


def embed_paths(
    embed: EmbedFn,
    paths: Sequence[Path],
    *,
    image_size: int,
    batch_size: int = 100,
    use_flipped_images: bool = False,
    on_batch: Callable[[int], None] | None = None,
    cache: CropCache | None = None,
) -> np.ndarray:
    """Stream images through ``tf.data`` in batches and embed them.

    Args:
        embed: raw-pixel batch (float32 0..255) -> embeddings.
        paths: image files, embedded in this order.
        image_size: centre crop / pad size.
        batch_size: images per batch read.
        use_flipped_images: concatenate the embedding of each image's mirror image.
        on_batch: called with the number of images of each finished batch.
        cache: keeps the decoded crops for the next call with the same paths (see
            :class:`CropCache`).

    Returns:
        ``(len(paths), D)`` float32 (``2 D`` with flips).

    Raises:
        InputError: an unreadable image, or a model that returns the wrong shape or non-finite
            values.
    """
    from facenet_cli.data.pipeline import image_errors

    keys = tuple(str(p) for p in paths)
    batches: Iterable[np.ndarray] = (
        cache.batches(keys, image_size, batch_size)
        if cache is not None
        else (b.numpy() for b in _dataset(keys, image_size, batch_size))
    )
    with image_errors(paths):
        return embed_batches(embed, batches, use_flipped_images=use_flipped_images,
                             on_batch=on_batch)  # fmt: skip


def embed_batches(
    embed: EmbedFn,
    batches: Iterable[np.ndarray],
    *,
    use_flipped_images: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Embed raw-pixel batches (float32 0..255) in order, checking what the model returns.

    Returns:
        ``(N, D)`` float32 (``2 D`` with flips); ``(0, 0)`` for no batches.

    Raises:
        InputError: a model that returns the wrong shape or non-finite values.
    """
    parts: list[np.ndarray] = []
    for images in batches:
        emb = _embed_batch(embed, images, use_flipped_images)
        if emb.ndim != 2 or emb.shape[0] != len(images):
            raise InputError(
                f"the model returned embeddings of shape {emb.shape} for {len(images)} images"
            )
        parts.append(emb.astype(np.float32, copy=False))
        if on_batch is not None:
            on_batch(len(images))
    if not parts:
        return np.zeros((0, 0), np.float32)
    out = np.concatenate(parts, axis=0)
    if not np.all(np.isfinite(out)):
        raise InputError("the model produced non-finite embeddings (NaN or infinity)")
    return out


def evaluate_on_pairs(
    embed: EmbedFn,
    lfw_dir: str | os.PathLike[str],
    pairs_path: str | os.PathLike[str] | Sequence[AnyPair],
    *,
    image_size: int,
    batch_size: int = 100,
    use_flipped_images: bool = False,
    distance_metric: int | str = 0,
    subtract_mean: bool = False,
    nrof_folds: int = 10,
    far_target: float = 1e-3,
    strict: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    cache: CropCache | None = None,
) -> ValidationReport:
    """Embed the images of a pairs file and run the LFW protocol on them.

    Each distinct image is read and embedded once (LFW's 6000 pairs name 7701 images, 12000
    times). Pairs with a missing image are skipped (counted in the report's warnings) unless
    ``strict``; the remaining pairs are then split into contiguous folds, which no longer equal
    the official ones.

    Args:
        embed: raw-pixel batch ``(N, S, S, 3)`` float32 0..255 -> L2-normalised ``(N, D)``,
            e.g. ``EmbeddingModel.embed``.
        lfw_dir: aligned images, ``<name>/<name>_<idx:04d>.<ext>`` for LFW pairs, the folder
            the paths are relative to for path-based pairs.
        pairs_path: a pairs file (LFW or path-based), or pairs already read with ``read_pairs``.
        image_size: centre crop / pad size (the model's input size).
        batch_size: images per batch.
        use_flipped_images: concatenate the embeddings of each image and its mirror.
        distance_metric: 0 / "euclidean" or 1 / "cosine".
        subtract_mean: per fold, subtract the training folds' mean embedding.
        nrof_folds: folds of the protocol.
        far_target: FAR at which VAL is reported.
        strict: a missing image is an error instead of a skipped pair.
        on_start: called once with the number of images to embed.
        on_batch: called with the number of images in each embedded batch.
        cache: decoded crops kept between calls (the training loop's evaluations).

    Returns:
        A :class:`ValidationReport`.

    Raises:
        InputError: unreadable or malformed pairs file, missing folder, a missing image with
            ``strict``, fewer usable pairs than folds, an unreadable image.
    """
    from facenet_cli.data.pairs_file import read_pairs, resolve_pairs

    metric = metric_id(distance_metric)
    source: Path | None = None
    if isinstance(pairs_path, str | os.PathLike):
        source = Path(pairs_path)
        pairs = read_pairs(source)
    else:
        pairs = list(pairs_path)
    lfw_dir = Path(lfw_dir)
    resolved = resolve_pairs(lfw_dir, pairs, strict=strict)
    where = source if source is not None else lfw_dir
    if resolved.kept.size < nrof_folds:
        raise InputError(
            f"{where}: only {resolved.kept.size} of {len(pairs)} pairs have both images under "
            f"{lfw_dir}; {nrof_folds} folds need at least {nrof_folds} (pass --lfw-pairs FILE; "
            f"`facenet pairs {lfw_dir} --out FILE` makes one for any aligned folder)"
        )
    unique: dict[Path, int] = {}
    slots = np.array([unique.setdefault(p, len(unique)) for p in resolved.paths], dtype=np.int64)
    images = list(unique)
    if on_start is not None:
        on_start(len(images))
    t0 = time.perf_counter()
    embeddings = embed_paths(
        embed,
        images,
        image_size=image_size,
        batch_size=batch_size,
        use_flipped_images=use_flipped_images,
        on_batch=on_batch,
        cache=cache,
    )
    seconds = time.perf_counter() - t0
    paired = embeddings[slots]
    result = evaluate(
        paired[0::2],
        paired[1::2],
        resolved.issame,
        nrof_folds=nrof_folds,
        distance_metric=metric,
        subtract_mean=subtract_mean,
        far_target=far_target,
    )
    names = [str(p) for p in resolved.paths]
    return ValidationReport(
        result=result,
        lfw_dir=lfw_dir,
        pairs_path=source,
        nrof_pairs_listed=len(pairs),
        kept=resolved.kept,
        missing=list(resolved.missing),
        nrof_images=len(images),
        nrof_forward=len(images) * (2 if use_flipped_images else 1),
        embedding_seconds=seconds,
        use_flipped_images=use_flipped_images,
        distances=protocol_distances(
            paired[0::2], paired[1::2], nrof_folds, metric, subtract_mean=subtract_mean
        ),
        pair_images=list(zip(names[0::2], names[1::2], strict=True)),
        issame=resolved.issame,
    )


def protocol_distances(
    embeddings1: np.ndarray,
    embeddings2: np.ndarray,
    nrof_folds: int,
    distance_metric: int,
    *,
    subtract_mean: bool = False,
) -> np.ndarray:
    """Per pair, the distance the protocol compares with its test fold's threshold.

    Without ``subtract_mean`` the plain distance; with it, each fold's pairs after subtracting
    that fold's training-fold mean embedding, as :func:`~facenet_cli.evaluate.metrics.evaluate`
    does.
    """
    if not subtract_mean:
        return distance(embeddings1, embeddings2, distance_metric)
    out = np.empty(len(embeddings1), np.float64)
    for test in fold_indices(len(embeddings1), nrof_folds):
        lo, hi = int(test[0]), int(test[-1]) + 1
        rows = [embeddings1[:lo], embeddings1[hi:], embeddings2[:lo], embeddings2[hi:]]
        mean = np.mean(np.concatenate(rows), axis=0)
        out[test] = distance(embeddings1[test] - mean, embeddings2[test] - mean, distance_metric)
    return out


def evaluate_on_pack(
    embed: EmbedFn,
    pack: VerificationPack,
    *,
    image_size: int,
    batch_size: int = 100,
    use_flipped_images: bool = False,
    distance_metric: int | str = 0,
    subtract_mean: bool = False,
    nrof_folds: int = 10,
    far_target: float = 1e-3,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    cache: CropCache | None = None,
) -> ValidationReport:
    """Run the protocol on an insightface verification pack: the same protocol as on a folder.

    Each image is decoded once, in memory (``pack_batches``), and embedded; image ``2 i`` and
    ``2 i + 1`` are pair ``i``; the pairs are split into ``nrof_folds`` contiguous folds.

    Args:
        embed: raw-pixel batch -> embeddings (see :func:`evaluate_on_pairs`).
        pack: a pack read by ``read_pack``.
        cache: keeps the decoded crops for the next call on the same pack (the training loop).
        The others: as for :func:`evaluate_on_pairs`.

    Raises:
        InputError: fewer pairs than folds, an undecodable image, a faulty model.
    """
    from facenet_cli.data.verification_pack import pack_batches

    metric = metric_id(distance_metric)
    if pack.nrof_pairs < nrof_folds:
        raise InputError(
            f"{pack.path}: {pack.nrof_pairs} pairs; {nrof_folds} folds need at least {nrof_folds}"
        )
    n = len(pack.images)
    if on_start is not None:
        on_start(n)
    t0 = time.perf_counter()
    batches: Iterable[np.ndarray] = (
        cache.stored(
            ("pack", str(pack.path), id(pack.images)),
            n,
            image_size,
            lambda: pack_batches(pack, image_size, batch_size),
            batch_size,
        )
        if cache is not None
        else pack_batches(pack, image_size, batch_size)
    )
    embeddings = embed_batches(
        embed, batches, use_flipped_images=use_flipped_images, on_batch=on_batch
    )
    seconds = time.perf_counter() - t0
    result = evaluate(
        embeddings[0::2],
        embeddings[1::2],
        pack.issame,
        nrof_folds=nrof_folds,
        distance_metric=metric,
        subtract_mean=subtract_mean,
        far_target=far_target,
    )
    return ValidationReport(
        result=result,
        lfw_dir=pack.path,
        pairs_path=pack.path,
        nrof_pairs_listed=pack.nrof_pairs,
        kept=np.arange(pack.nrof_pairs, dtype=np.int64),
        missing=[],
        nrof_images=n,
        nrof_forward=n * (2 if use_flipped_images else 1),
        embedding_seconds=seconds,
        use_flipped_images=use_flipped_images,
        distances=protocol_distances(
            embeddings[0::2], embeddings[1::2], nrof_folds, metric, subtract_mean=subtract_mean
        ),
        pair_images=[
            (pack.image_name(2 * i), pack.image_name(2 * i + 1)) for i in range(pack.nrof_pairs)
        ],
        issame=pack.issame,
    )
