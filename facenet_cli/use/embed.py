"""``facenet embed``: the embeddings of a whole folder, to one reusable ``.npz``.

Also the embedding step that ``classify`` shares: aligned crops stream through the validation
pipeline (``tf.data`` decode and centre crop, then the model); raw photos are detected and cut
with the training geometry first (``--align``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.use.store import EmbeddingSet, file_signature, read_embeddings, write_embeddings

if TYPE_CHECKING:
    from facenet_cli.config import EmbedConfig
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
) -> Embedded:
    """Embed aligned crops, or (``align``) the most central face of each raw photo.

    With ``flip`` each face's embedding is fused with its mirror image's (:func:`fuse_flipped`).

    Raises:
        InputError: an aligned crop that cannot be read (the photos of ``align`` are skipped
            with their reason instead).
    """
    info = model.info
    flip = flip and not info.flip_fusion  # such a model's embedding is fused already
    if not paths:
        return Embedded(np.zeros((0, info.embedding_size), np.float32), np.zeros(0, np.int64), {})
    if not align:
        from facenet_cli.evaluate.validate import embed_paths

        emb = embed_paths(
            model.embed, list(paths), image_size=info.image_size, batch_size=batch_size,
            use_flipped_images=flip, on_batch=on_done,
        )  # fmt: skip
        return Embedded(fuse_flipped(emb) if flip else emb, np.arange(len(paths)), {})
    from facenet_cli.use.faces import detect_photos, model_alignment

    alignment = model_alignment(info, Path(model.source))
    parts: list[np.ndarray] = []
    kept: list[int] = []
    skipped: dict[int, str] = {}
    for start in range(0, len(paths), DETECT_CHUNK):
        chunk = list(paths[start : start + DETECT_CHUNK])
        photos = detect_photos(chunk, alignment, info.image_size)
        crops = [p.crops[0] for p in photos if len(p.crops)]
        for k, photo in enumerate(photos):
            if photo.reason is not None:
                skipped[start + k] = photo.reason
            else:
                kept.append(start + k)
        if crops:
            batch = np.stack(crops).astype(np.float32)
            if flip:
                both = np.asarray(model.embed(np.concatenate([batch, batch[:, :, ::-1, :]])))
                parts.append(fuse_flipped(np.concatenate(np.split(both, 2), axis=1)))
            else:
                parts.append(model.embed(batch))
        if on_done is not None:
            on_done(len(chunk))
    emb = np.concatenate(parts) if parts else np.zeros((0, info.embedding_size), np.float32)
    return Embedded(emb.astype(np.float32), np.array(kept, np.int64), skipped)


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
    """Images of a folder of identities: paths, label per path and the identity names."""
    from facenet_cli.data.dataset import get_dataset, paths_and_labels

    classes = get_dataset(data_dir)
    paths, labels = paths_and_labels(classes)
    return paths, np.asarray(labels, np.int64), [c.name for c in classes]


def _reusable(out: Path, fingerprint: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Rows of an earlier file made with the same model and settings: ``rel -> (sig, row)``."""
    if not out.exists():
        return {}
    try:
        old = read_embeddings(out)
    except InputError:
        return {}  # damaged or foreign: rewritten from scratch
    if old.meta.get("model") != fingerprint or old.meta.get("settings") != settings:
        return {}
    return {
        str(rel): (str(sig), old.embeddings[k])
        for k, (rel, sig) in enumerate(zip(old.paths, old.signatures, strict=True))
    }


@dataclass(frozen=True)
class EmbedSummary:
    """What ``facenet embed`` did."""

    out: Path
    nrof_images: int
    nrof_reused: int
    nrof_embedded: int
    skipped: dict[str, str]
    seconds: float
    nrof_classes: int
    embedding_size: int

    @property
    def images_per_second(self) -> float:
        return self.nrof_embedded / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "images": self.nrof_images,
            "classes": self.nrof_classes,
            "embedding_size": self.embedding_size,
            "reused": self.nrof_reused,
            "embedded": self.nrof_embedded,
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }


def embed_folder(
    model: EmbeddingModel,
    data_dir: Path,
    out: Path,
    *,
    align: bool = False,
    batch_size: int = 100,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[int], None] | None = None,
    flip: bool = False,
) -> EmbedSummary:
    """Embed every image of ``data_dir`` (one sub-folder per identity) into ``out``.

    Rows of an existing ``out`` made by the same model and settings, for images whose size and
    modification time are unchanged, are reused; the file is rewritten atomically.
    """
    from facenet_cli.use.faces import model_alignment

    data_dir = Path(data_dir)
    paths, labels, names = list_identities(data_dir)
    rels = [p.relative_to(data_dir).as_posix() for p in paths]
    sigs = [file_signature(p) for p in paths]
    fingerprint = model_fingerprint(model)
    settings: dict[str, Any] = {"align": align, "flip": flip}
    if align:
        settings["alignment"] = dataclasses.asdict(model_alignment(model.info, Path(model.source)))
    old = _reusable(out, fingerprint, settings)
    rows: dict[int, np.ndarray] = {}
    todo: list[int] = []
    for k, (rel, sig) in enumerate(zip(rels, sigs, strict=True)):
        hit = old.get(rel)
        if hit is not None and hit[0] == sig:
            rows[k] = hit[1]
        else:
            todo.append(k)
    if on_start is not None:
        on_start(len(todo))
    t0 = time.perf_counter()
    done = embed_images(
        model, [paths[k] for k in todo], align=align, batch_size=batch_size,
        on_done=on_done, flip=flip,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    for row, k in zip(done.embeddings, done.kept, strict=True):
        rows[todo[int(k)]] = row
    skipped = {rels[todo[k]]: reason for k, reason in done.skipped.items()}
    order = sorted(rows)
    size = model.info.embedding_size
    emb = np.stack([rows[k] for k in order]) if order else np.zeros((0, size), np.float32)
    write_embeddings(
        out,
        EmbeddingSet(
            embeddings=emb,
            paths=np.array([rels[k] for k in order], dtype=np.str_),
            labels=labels[order],
            class_names=np.array(names),
            signatures=np.array([sigs[k] for k in order], dtype=np.str_),
            meta={
                "model": fingerprint,
                "settings": settings,
                "data_dir": str(data_dir),
                "skipped": skipped,
            },
        ),  # fmt: skip
    )
    return EmbedSummary(
        out=Path(out), nrof_images=len(order), nrof_reused=len(paths) - len(todo),
        nrof_embedded=len(done.kept), skipped=skipped, seconds=seconds,
        nrof_classes=len(names), embedding_size=int(emb.shape[1]) if emb.ndim == 2 else size,
    )  # fmt: skip


def run_embed(config: EmbedConfig) -> EmbedSummary:
    """``facenet embed``: embed a folder with Rich progress and print a summary."""
    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.progress import console, progress_bars

    model = load_embedding_model(config.model)
    if config.xla is not False:
        import tensorflow as tf

        from facenet_cli.config import resolve_xla

        if resolve_xla(config.xla, bool(tf.config.list_logical_devices("GPU"))):
            model = dataclasses.replace(model, _embed=model.embedder(xla=True))
    with progress_bars("rate", transient=True) as progress:
        state: dict[str, Any] = {}

        def on_start(total: int) -> None:
            state.update(start=time.perf_counter(), done=0)
            state["task"] = progress.add_task("embedding", total=total, rate="")

        def on_done(n: int) -> None:
            state["done"] += n
            rate = f"{state['done'] / max(time.perf_counter() - state['start'], 1e-9):.0f} img/s"
            progress.update(state["task"], advance=n, rate=rate)

        summary = embed_folder(
            model, config.data_dir, config.out, align=config.align,
            batch_size=config.batch_size, on_start=on_start, on_done=on_done, flip=config.flip,
        )  # fmt: skip
    for rel, reason in summary.skipped.items():
        console.print(f"[yellow]skipped:[/] {rel}: {reason}", highlight=False, soft_wrap=True)
    if config.json:
        print(json.dumps(summary.to_dict(), indent=2))
        return summary
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"embeddings -> {summary.out}", show_header=False)
    table.add_row("images", f"{summary.nrof_images} of {summary.nrof_classes} identities")
    table.add_row("embedding size", str(summary.embedding_size))
    table.add_row("reused", str(summary.nrof_reused))
    rate = f" ({summary.images_per_second:.0f} img/s)" if summary.nrof_embedded else ""
    table.add_row("embedded", f"{summary.nrof_embedded}{rate}")
    table.add_row("skipped", str(len(summary.skipped)))
    Console(highlight=False).print(table)
    return summary
