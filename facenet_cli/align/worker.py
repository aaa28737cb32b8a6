"""An alignment worker: decodes chunks of inputs, detects faces in batches, writes the crops.

A worker runs in its own process (``worker_main``) or inline in the coordinator; either way it
only reports records back, and the coordinator alone appends them to the journal.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facenet_cli.align.inputs import AlignInput
from facenet_cli.align.journal import Record
from facenet_cli.config import AlignConfig
from facenet_cli.errors import StorageError
from facenet_cli.tf_quiet import quiet_tensorflow

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class ChunkTask:
    chunk: int
    inputs: tuple[AlignInput, ...]
    todo: tuple[bool, ...]  # False: done in an earlier run (still detected, for the same batch)


class ChunkAligner:
    """Detects a chunk of images and writes its crops (runs inside a worker)."""

    def __init__(self, config: AlignConfig, tmp_tag: str) -> None:
        from facenet_cli.align.detector import shared_detector

        self.config = config
        self.tmp_tag = tmp_tag
        self.detector = shared_detector(config.min_face_size, config.thresholds, config.factor)
        self._made_dirs: set[Path] = set()
        # Crops are resized, encoded and written in a thread (OpenCV and PIL release the GIL),
        # overlapping the detection of the next chunk.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="align-write")

    def close(self) -> None:
        """Finish pending writes and stop the writer thread."""
        self._writer.shutdown(wait=True, cancel_futures=True)

    def chunks(self, tasks: Iterator[ChunkTask | None]) -> Iterator[tuple[ChunkTask, list[Record]]]:
        """Align chunks; yield each with its records once all of its crops are on disk."""
        previous: tuple[ChunkTask, list[Record], list[Future[None]]] | None = None
        for task, images in _prefetch(tasks):
            records, writes = self.align(task, images)
            if previous is not None:
                yield self._settle(previous)
            previous = (task, records, writes)
        if previous is not None:
            yield self._settle(previous)

    @staticmethod
    def _settle(
        item: tuple[ChunkTask, list[Record], list[Future[None]]],
    ) -> tuple[ChunkTask, list[Record]]:
        task, records, writes = item
        for w in writes:
            w.result()  # re-raises a failed write
        return task, records

    @staticmethod
    def decode(task: ChunkTask) -> list[np.ndarray | str]:
        """Decode every image of the chunk; a string is a failure reason."""
        from facenet_cli.align.imageio import DecodeError, decode

        out: list[np.ndarray | str] = []
        for inp in task.inputs:
            try:
                out.append(decode(inp.path))
            except DecodeError as exc:
                out.append(str(exc))
        return out

    def align(
        self, task: ChunkTask, images: list[np.ndarray | str]
    ) -> tuple[list[Record], list[Future[None]]]:
        """Detect a chunk and queue its crops; return the records and the pending writes."""
        import numpy as np

        cfg = self.config
        ok = [
            k
            for k, im in enumerate(images)
            if not isinstance(im, str) and min(im.shape[:2]) >= cfg.min_face_size
        ]
        dets = self.detector.detect([images[k] for k in ok])  # type: ignore[misc]
        by_index = dict(zip(ok, dets, strict=True))
        records = []
        writes: list[Future[None]] = []
        for k, (inp, todo) in enumerate(zip(task.inputs, task.todo, strict=True)):
            if not todo:
                continue
            im = images[k]
            if isinstance(im, str):
                records.append(Record(inp.rel, reason=im, sig=inp.sig))
            elif k not in by_index:
                h, w = im.shape[:2]
                records.append(
                    Record(
                        inp.rel,
                        sig=inp.sig,
                        reason=f"image too small ({w}x{h} px, below the minimum face size "
                        f"{cfg.min_face_size} px)",
                    )
                )
            else:
                records.append(self._write_faces(inp, np.asarray(im), by_index[k], writes))
        return records, writes

    def _write_faces(self, inp: AlignInput, image: np.ndarray, det, writes: list) -> Record:  # type: ignore[no-untyped-def]
        from facenet_cli.align import geometry as geo

        cfg = self.config
        if len(det) == 0:
            return Record(inp.rel, reason="no face found", sig=inp.sig)
        h, w = image.shape[:2]
        if cfg.detect_multiple_faces:
            chosen = list(range(len(det)))
        else:
            chosen = [geo.central_face_index(det.boxes, h, w) if len(det) > 1 else 0]
        faces = []
        for i in chosen:
            bb = geo.margin_box(det.boxes[i], cfg.margin, h, w)
            if bb[2] - bb[0] < 2 or bb[3] - bb[1] < 2:
                continue
            name = f"{inp.stem}_{i}.png" if cfg.detect_multiple_faces else f"{inp.stem}.png"
            if inp.out_dir not in self._made_dirs:
                try:
                    inp.out_dir.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"{inp.out_dir}: cannot create ({exc.strerror})") from None
                self._made_dirs.add(inp.out_dir)
            writes.append(
                self._writer.submit(
                    _write_crop, inp.out_dir / name, image, bb, det.landmarks[i], cfg, self.tmp_tag
                )
            )
            faces.append((name, int(bb[0]), int(bb[1]), int(bb[2]), int(bb[3])))
        if not faces:
            return Record(inp.rel, reason="face too small (the crop is under 2 px)", sig=inp.sig)
        return Record(inp.rel, tuple(faces), sig=inp.sig)


def _write_crop(
    path: Path, image: np.ndarray, bb: np.ndarray, landmarks: np.ndarray, cfg: AlignConfig, tag: str
) -> None:
    from facenet_cli.align.imageio import crop_resize, warp_similarity, write_png_atomic

    if cfg.mode == "similarity":
        pixels = warp_similarity(image, landmarks, cfg.image_size, cfg.margin)
    else:
        pixels = crop_resize(image, bb, cfg.image_size)
    try:
        write_png_atomic(path, pixels, tag)
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _prefetch(tasks: Iterator[ChunkTask | None], depth: int = 1):  # type: ignore[no-untyped-def]
    """Decode chunks in a thread, ``depth`` ahead of detection (OpenCV releases the GIL)."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for task in tasks:
                if stop.is_set():
                    return
                if task is None:
                    break
                q.put((task, ChunkAligner.decode(task)))
            q.put(None)
        except BaseException as exc:  # surfaced in the consumer
            q.put(exc)

    thread = threading.Thread(target=run, daemon=True, name="align-decode")
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _die_with_parent(parent_pid: int) -> None:
    """Workers end when the coordinator is killed (Linux: PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
        except OSError:
            pass
    if os.getppid() != parent_pid:
        os._exit(1)


def worker_main(
    config: AlignConfig, tmp_tag: str, threads: int, tasks: Any, results: Any, parent_pid: int
) -> None:
    """Entry point of a worker process."""
    # A spawned process starts bare: quiet it as the command line quiets itself (FACENET_DEBUG,
    # set by ``--debug``, is inherited and leaves it talking).
    quiet_tensorflow()
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    try:
        from facenet_cli.align.detector import configure_tensorflow

        configure_tensorflow(threads, config.gpu_memory_fraction)
        aligner = ChunkAligner(config, tmp_tag)
        results.put(("ready", os.getpid()))

        def pull() -> Iterator[ChunkTask | None]:
            while True:
                try:
                    task = tasks.get(timeout=1.0)
                except queue.Empty:
                    if os.getppid() != parent_pid:
                        return
                    continue
                yield task
                if task is None:
                    return

        for task, records in aligner.chunks(pull()):
            results.put(("done", task.chunk, [r.to_json() for r in records]))
    except BaseException as exc:  # reported to the coordinator, which stops the run
        results.put(("error", f"{type(exc).__name__}: {exc}"))
