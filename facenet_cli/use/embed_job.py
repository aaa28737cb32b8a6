"""``facenet embed``: the embeddings of a whole folder, to one reusable ``.npz``.

The embedding step itself (shared with ``classify``) is :mod:`facenet_cli.use.face_embedding`.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.use.face_embedding import (
    Embedded,
    embed_images,
    list_identities,
    model_fingerprint,
)
from facenet_cli.use.store import (
    EmbeddingSet,
    check_replaceable,
    file_signature,
    read_embeddings,
    write_embeddings,
)

if TYPE_CHECKING:
    from facenet_cli.config import EmbedConfig
    from facenet_cli.models.loading import EmbeddingModel

# ``facenet embed`` saves the rows finished so far this often (seconds), so that a killed run
# loses at most about this much work; a save also waits for this many times the last save's
# duration, so writing a large file stays a small part of the run.
SAVE_SECONDS = 60.0
SAVE_COST_RATIO = 10.0


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
    modification time are unchanged, are reused; the file is rewritten atomically. An image
    that cannot be read, or (``align``) holds no face, is skipped and named in the summary.

    The work survives an interruption: the rows finished so far are written to ``out`` (in the
    same format, so a rerun reuses them) every :data:`SAVE_SECONDS` or so, and when the run
    stops with an exception (Ctrl-C included), which is then raised again.

    Raises:
        InputError: ``out`` is a facenet file of another kind (a classifier), or see
            :func:`embed_images`.
        StorageError: ``out`` cannot be written.
    """
    from facenet_cli.use.faces import model_alignment

    check_replaceable(out, "embeddings")  # before any work: not over a classifier file
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
    size = model.info.embedding_size
    skipped: dict[str, str] = {}

    def save() -> np.ndarray:
        order = sorted(rows)
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
                    "skipped": dict(skipped),
                },
            ),  # fmt: skip
        )
        return emb

    saver = _PeriodicSave(save)

    def on_rows(part: Embedded) -> None:
        for row, k in zip(part.embeddings, part.kept, strict=True):
            rows[todo[int(k)]] = row
        skipped.update({rels[todo[k]]: reason for k, reason in part.skipped.items()})
        saver.changed()

    if on_start is not None:
        on_start(len(todo))
    t0 = time.perf_counter()
    try:
        done = embed_images(
            model, [paths[k] for k in todo], align=align, batch_size=batch_size,
            on_done=on_done, flip=flip, on_rows=on_rows,
        )  # fmt: skip
    except BaseException:
        if saver.dirty:
            save()  # what is finished is kept: a rerun reuses it
        raise
    seconds = time.perf_counter() - t0
    emb = save()
    return EmbedSummary(
        out=Path(out), nrof_images=len(rows), nrof_reused=len(paths) - len(todo),
        nrof_embedded=len(done.kept), skipped=skipped, seconds=seconds,
        nrof_classes=len(names), embedding_size=int(emb.shape[1]) if emb.ndim == 2 else size,
    )  # fmt: skip


class _PeriodicSave:
    """Calls ``save`` after new work once :data:`SAVE_SECONDS` have passed since the last save,
    and no sooner than :data:`SAVE_COST_RATIO` times that save's own duration (a large file is
    saved less often, so saving stays a small part of the run)."""

    def __init__(self, save: Callable[[], object]) -> None:
        self._save = save
        self.dirty = False
        self._last = time.perf_counter()
        self._cost = 0.0

    def changed(self) -> None:
        self.dirty = True
        since = time.perf_counter() - self._last
        if since >= SAVE_SECONDS and since >= SAVE_COST_RATIO * self._cost:
            start = time.perf_counter()
            self._save()
            self.dirty = False
            self._last = time.perf_counter()
            self._cost = self._last - start


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
