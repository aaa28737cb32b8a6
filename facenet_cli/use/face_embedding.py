"""The embedding step ``embed`` and ``classify`` share: images in, unit embeddings out.

Aligned crops stream through the validation pipeline (``tf.data`` decode and centre crop, then
the model), unreadable ones skipped with their reason; raw photos are detected and cut with the
model's training geometry first (``--align``). Each face may be fused with its mirror image.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError

if TYPE_CHECKING:
    from facenet_cli.models.loading import EmbeddingModel

DETECT_CHUNK = 32  # photos detected together with --align


@dataclass(frozen=True)
class Embedded:
    """Embeddings of some of a list of images.

    Attributes:
        embeddings: ``(K, D)`` for the images in ``kept``.
        kept: indices into the input list of the images that have an embedding.
        skipped: index -> reason for the images without one (no face, unreadable).
    """

    embeddings: np.ndarray
    kept: np.ndarray
    skipped: dict[int, str]


def model_fingerprint(model: EmbeddingModel) -> dict[str, Any]:
    """What identifies a model's embeddings: its source, its files' times and its sidecar."""
    source = Path(model.source).resolve()
    stamp = next((p.stat().st_mtime_ns for p in (Path(f"{source}.index"), source) if p.exists()), 0)
    info = {
        k: v for k, v in dataclasses.asdict(model.info).items() if not k.startswith("threshold")
    }
    return {"source": str(source), "mtime_ns": stamp, "info": info}


def embed_images(
    model: EmbeddingModel,
    paths: Sequence[Path],
    *,
    align: bool,
    batch_size: int = 100,
    on_done: Callable[[int], None] | None = None,
    flip: bool = False,
    on_rows: Callable[[Embedded], None] | None = None,
) -> Embedded:
    """Embed aligned crops, or (``align``) the most central face of each raw photo.

    With ``flip`` each face's embedding is fused with its mirror image's (:func:`fuse_flipped`).
    An image that cannot be read (empty, truncated, not an image, gone) is skipped with its
    reason, in both modes; so is a photo without a face (``align``).

    Args:
        on_done: called with the number of images of each finished batch, skipped ones included.
        on_rows: called before ``on_done`` with what each batch finished: an :class:`Embedded`
            whose indices are into ``paths`` (lets a caller keep the work done so far).

    Raises:
        InputError: the model returned the wrong shape or non-finite values, or an image the
            pipeline refuses that the image reader decodes (nothing to skip it for).
    """
    info = model.info
    flip = flip and not info.flip_fusion  # such a model's embedding is fused already
    if not paths:
        return Embedded(np.zeros((0, info.embedding_size), np.float32), np.zeros(0, np.int64), {})
    if not align:
        return _embed_crops(model, list(paths), batch_size, flip, on_done, on_rows)
    from facenet_cli.use.faces import detect_photos, model_alignment

    alignment = model_alignment(info, Path(model.source))
    forward = _Forward(model, flip)
    parts: list[np.ndarray] = []
    kept: list[int] = []
    skipped: dict[int, str] = {}
    for start in range(0, len(paths), DETECT_CHUNK):
        chunk = list(paths[start : start + DETECT_CHUNK])
        photos = detect_photos(chunk, alignment, info.image_size)
        crops = [p.crops[0] for p in photos if len(p.crops)]
        chunk_kept: list[int] = []
        chunk_skipped: dict[int, str] = {}
        for k, photo in enumerate(photos):
            if photo.reason is not None:
                chunk_skipped[start + k] = photo.reason
            else:
                chunk_kept.append(start + k)
        rows = (
            forward(np.stack(crops).astype(np.float32))
            if crops
            else np.zeros((0, info.embedding_size), np.float32)
        )
        forward.pending.clear()  # reported below, not through ``embed_paths``
        parts.append(rows)
        kept.extend(chunk_kept)
        skipped.update(chunk_skipped)
        if on_rows is not None:
            on_rows(Embedded(rows, np.array(chunk_kept, np.int64), chunk_skipped))
        if on_done is not None:
            on_done(len(chunk))
    emb = np.concatenate(parts) if parts else np.zeros((0, info.embedding_size), np.float32)
    return Embedded(emb.astype(np.float32), np.array(kept, np.int64), skipped)


class _Forward:
    """The model's forward pass for a batch of crops: fused with the mirror images' under
    ``flip``, checked (one row per image, finite), float32.

    ``failed`` tells an error of the model from one of the image pipeline around it.
    """

    def __init__(self, model: EmbeddingModel, flip: bool) -> None:
        self.model = model
        self.flip = flip
        self.failed = False
        self.pending: list[np.ndarray] = []  # rows of the batches not yet reported

    def __call__(self, images: np.ndarray) -> np.ndarray:
        try:
            return self._embed(images)
        except BaseException:
            self.failed = True
            raise

    def _embed(self, images: np.ndarray) -> np.ndarray:
        n = len(images)
        batch = np.concatenate([images, images[:, :, ::-1, :]]) if self.flip else images
        emb = np.asarray(self.model.embed(batch))
        if emb.ndim != 2 or emb.shape[0] != len(batch):
            raise InputError(
                f"the model returned embeddings of shape {emb.shape} for {len(batch)} images"
            )
        if not np.all(np.isfinite(emb)):
            raise InputError("the model produced non-finite embeddings (NaN or infinity)")
        if self.flip:
            emb = fuse_flipped(np.concatenate([emb[:n], emb[n:]], axis=1))
        rows = emb.astype(np.float32, copy=False)
        self.pending.append(rows)
        return rows


class _CropRun:
    """One pass of aligned crops through ``embed_paths``, reporting each finished batch."""

    def __init__(
        self,
        forward: _Forward,
        indices: list[int],
        on_rows: Callable[[Embedded], None],
        on_done: Callable[[int], None] | None,
    ) -> None:
        self.forward = forward
        self.indices = indices
        self.done = 0  # images of ``indices`` embedded and reported
        self.on_rows = on_rows
        self.on_done = on_done

    def on_batch(self, n: int) -> None:
        rows = np.concatenate(self.forward.pending) if self.forward.pending else None
        self.forward.pending.clear()
        if rows is None or len(rows) != n:
            raise RuntimeError(f"{n} images finished, {0 if rows is None else len(rows)} rows")
        kept = np.array(self.indices[self.done : self.done + n], np.int64)
        self.done += n
        self.on_rows(Embedded(rows, kept, {}))
        if self.on_done is not None:
            self.on_done(n)


def _embed_crops(
    model: EmbeddingModel,
    paths: list[Path],
    batch_size: int,
    flip: bool,
    on_done: Callable[[int], None] | None,
    on_rows: Callable[[Embedded], None] | None,
) -> Embedded:
    """Aligned crops through the ``tf.data`` pipeline; unreadable ones skipped with a reason.

    The pipeline stops at the first file it cannot decode without naming it; only then are the
    images it had not finished checked one by one (:func:`unreadable_images`), the bad ones
    skipped and the rest streamed again, so every bad file is found in one run and a folder
    without any is decoded once.
    """
    from facenet_cli.evaluate.pairs_embedding import embed_paths

    size = model.info.embedding_size
    forward = _Forward(model, flip)
    parts: list[np.ndarray] = []
    kept: list[np.ndarray] = []
    skipped: dict[int, str] = {}

    def report(part: Embedded) -> None:
        parts.append(part.embeddings)
        kept.append(part.kept)
        skipped.update(part.skipped)
        if on_rows is not None:
            on_rows(part)

    remaining = list(range(len(paths)))
    while remaining:
        run = _CropRun(forward, remaining, report, on_done)
        try:
            embed_paths(
                forward, [paths[k] for k in remaining], image_size=model.info.image_size,
                batch_size=batch_size, on_batch=run.on_batch,
            )  # fmt: skip
            break
        except InputError:
            if forward.failed:
                raise  # the model's fault, not an image's
            forward.pending.clear()
            rest = remaining[run.done :]
            bad = unreadable_images([paths[k] for k in rest])
            if not bad:
                raise  # nothing the image reader refuses: the pipeline's error stands
            reasons = {rest[j]: reason for j, reason in bad.items()}
            remaining = [k for k in rest if k not in reasons]
            report(Embedded(np.zeros((0, size), np.float32), np.zeros(0, np.int64), reasons))
            if on_done is not None:
                on_done(len(reasons))
    emb = np.concatenate(parts) if parts else np.zeros((0, size), np.float32)
    return Embedded(emb, np.concatenate(kept) if kept else np.zeros(0, np.int64), skipped)


def unreadable_images(paths: Sequence[Path]) -> dict[int, str]:
    """Index -> reason for each path that does not decode (the reasons ``--align`` gives).

    Decodes every file (OpenCV, then Pillow), on all cores: called only once the pipeline has
    stopped at a bad file, to find all of them at once.
    """
    from concurrent.futures import ThreadPoolExecutor

    from facenet_cli.cpu import cpu_count
    from facenet_cli.data.images import DecodeError, read_image

    def reason(path: Path) -> str | None:
        try:
            read_image(path)
        except DecodeError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max(1, min(cpu_count(), 16))) as pool:
        reasons = list(pool.map(reason, paths))
    return {k: r for k, r in enumerate(reasons) if r is not None}


def fuse_flipped(pairs: np.ndarray) -> np.ndarray:
    """One unit embedding per face from ``(N, 2 D)`` rows of [image, mirror image] embeddings.

    The sum of the two, normalised again: a mirrored face is the same person, so the average
    of the two views cancels part of what pose and lighting add to one. On real held-out people
    (lfw-dev, the CPU recipe's model) it raised the verification AUC from 0.881 to 0.896; on the
    demo's people it calls more strangers "unknown" at the same accuracy on known people.
    """
    size = pairs.shape[1] // 2
    fused = pairs[:, :size] + pairs[:, size:]
    norms = np.linalg.norm(fused, axis=1, keepdims=True)
    return (fused / np.maximum(norms, 1e-12)).astype(np.float32)


def list_identities(data_dir: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Images of a folder of identities: paths, label per path and the identity names.

    Folders inside identity folders are not read; a warning line (stderr) says so.
    """
    from facenet_cli.data.dataset import paths_and_labels, scan_dataset, subfolder_warning
    from facenet_cli.progress import console

    classes, nested = scan_dataset(data_dir)
    if (note := subfolder_warning(nested)) is not None:
        console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
    paths, labels = paths_and_labels(classes)
    return paths, np.asarray(labels, np.int64), [c.name for c in classes]
