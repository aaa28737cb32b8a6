"""The resumable, parallel alignment pipeline behind ``facenet align``.

Work is cut into fixed chunks of ``batch_size`` consecutive inputs (in sorted order, after the
``--shard`` filter). A chunk is the unit handed to one worker process and detected as one batch,
so a rerun recomputes a half-finished chunk with exactly the same batch and gets the same bytes.
Each worker decodes its next chunk in a thread while it detects the current one, writes the crops
atomically and reports records back; only the coordinating process appends to the journal.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import random
import signal
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facenet_cli.align.journal import Journal, Record, write_text_atomic
from facenet_cli.config import AlignConfig
from facenet_cli.cpu import cpu_count
from facenet_cli.data.dataset import IMAGE_EXTENSIONS
from facenet_cli.errors import FacenetError, InputError, StorageError

if TYPE_CHECKING:
    import numpy as np

BOX_FILE = "bounding_boxes"
FAILURES_FILE = "failures"
JOURNAL_FILE = ".align-journal"


@dataclass(frozen=True)
class AlignInput:
    """One input image and where its crops go."""

    rel: str  # class/file, POSIX separators
    path: Path
    out_dir: Path
    stem: str
    sig: str = ""  # size and mtime: an input changed since its record is done again


@dataclass(frozen=True)
class AlignSummary:
    """What a run did (``total`` counts the inputs of this shard)."""

    input_dir: Path
    output_dir: Path
    total: int
    skipped: int
    processed: int
    aligned: int
    faces: int
    failures: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    box_file: Path | None = None
    failures_file: Path | None = None

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------------- inputs


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)`` with ``0 <= I < N``."""
    try:
        i_text, n_text = spec.split("/")
        index, count = int(i_text), int(n_text)
    except ValueError:
        raise InputError(f"--shard {spec!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise InputError(f"--shard {spec!r}: need 0 <= I < N")
    return index, count


def in_shard(rel: str, index: int, count: int) -> bool:
    """Stable partition by a hash of the relative path: the same on every machine and run."""
    return count == 1 or zlib.crc32(rel.encode("utf-8")) % count == index


def list_inputs(input_dir: Path, output_dir: Path) -> list[AlignInput]:
    """Every image-named entry of every class folder, sorted (unreadable entries included).

    Raises:
        InputError: the input folder is missing or holds no class folders with images.
    """
    if not input_dir.is_dir():
        raise InputError(f"{input_dir}: input directory not found")
    try:
        entries = list(os.scandir(input_dir))
    except OSError as exc:
        raise InputError(f"{input_dir}: cannot list directory ({exc.strerror})") from None
    classes = sorted(e.name for e in entries if e.name[0] != "." and _is_dir(e))
    if not classes:
        raise InputError(f"{input_dir}: no class sub-folders (expected <root>/<identity>/<image>)")
    out: list[AlignInput] = []
    for cls in classes:
        try:
            names = sorted(e.name for e in os.scandir(input_dir / cls))
        except OSError:
            continue
        names = [n for n in names if n[0] != "." and Path(n).suffix.lower() in IMAGE_EXTENSIONS]
        stems = Counter(Path(n).stem for n in names)
        seen: set[str] = set()
        for name in names:
            stem = Path(name).stem
            if stems[stem] > 1 and stem in seen:
                # a.jpg and a.png in one folder: the second gets a distinct output name
                stem = f"{stem}_{Path(name).suffix.lower().lstrip('.')}"
            seen.add(Path(name).stem)
            path = input_dir / cls / name
            out.append(AlignInput(f"{cls}/{name}", path, output_dir / cls, stem, _signature(path)))
    if not out:
        raise InputError(f"{input_dir}: no images found in {len(classes)} class folders")
    return out


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """``entry.is_dir()``, false for entries that cannot be resolved (a symlink loop)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _signature(path: Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "unreadable"
    return f"{st.st_size}:{st.st_mtime_ns}"


def settings_of(config: AlignConfig) -> dict[str, Any]:
    """The options that change the output bytes (the journal refuses a mix)."""
    return {
        "image_size": config.image_size,
        "margin": config.margin,
        "detect_multiple_faces": config.detect_multiple_faces,
        "min_face_size": config.min_face_size,
        "thresholds": [float(t) for t in config.thresholds],
        "factor": float(config.factor),
        "mode": config.mode,
    }


def _suffix(index: int, count: int) -> str:
    return "" if count == 1 else f"_shard{index}of{count}"


# ---------------------------------------------------------------------------------- worker


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
        # Crops are resized, encoded and written in a thread (PIL releases the GIL), overlapping
        # the detection of the next chunk.
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
    """Decode chunks in a thread, ``depth`` ahead of detection (PIL releases the GIL)."""
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


def _worker_main(
    config: AlignConfig, tmp_tag: str, threads: int, tasks: Any, results: Any, parent_pid: int
) -> None:
    """Entry point of a worker process."""
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


# ---------------------------------------------------------------------------------- run


CORES_PER_WORKER = 4
IMAGES_PER_WORKER = 500


def auto_workers(cores: int, pending: int) -> int:
    """Worker processes for ``--workers 0``: about one per 4 cores, one for small jobs.

    Each process runs TensorFlow with ``cores // workers`` threads, which already keeps its cores
    busy on the batched networks; a process costs several CPU-seconds to start (importing
    TensorFlow), which a small job never wins back. Measured on 2 cores, 300 built-in photos: one
    process with 2 threads used 15 s of CPU, two processes with 1 thread each 22-25 s.
    """
    return max(1, min(cores // CORES_PER_WORKER, pending // IMAGES_PER_WORKER))


def _clean_tmp(inputs: Sequence[AlignInput], tmp_tag: str) -> None:
    """Remove this shard's temporary files left by a killed run."""
    from facenet_cli.align.imageio import is_tmp_name

    for out_dir in sorted({i.out_dir for i in inputs}):
        try:
            entries = list(os.scandir(out_dir))
        except OSError:
            continue
        for e in entries:
            if is_tmp_name(e.name) and f".{tmp_tag}." in e.name:
                try:
                    os.unlink(e.path)
                except OSError:
                    pass


def _remove_stale_crops(inputs: Sequence[AlignInput], journal: Journal, done: set[str]) -> None:
    """Delete the crops of inputs that changed since they were aligned (they are redone)."""
    for inp in inputs:
        rec = journal.records.get(inp.rel)
        if rec is None or inp.rel in done:
            continue
        for name, *_box in rec.faces:
            (inp.out_dir / name).unlink(missing_ok=True)


def _compact(
    journal: Journal,
    inputs: Sequence[AlignInput],
    output_dir: Path,
    box_file: Path,
    failures_file: Path,
) -> None:
    """Write the box file and failures file from the journal, in input order."""
    boxes, failures = [], []
    for inp in inputs:
        rec = journal.records.get(inp.rel)
        if rec is None:
            continue
        cls = inp.rel.split("/", 1)[0]
        if rec.faces:
            for name, x1, y1, x2, y2 in rec.faces:
                boxes.append(f"{output_dir / cls / name} {x1} {y1} {x2} {y2}\n")
        else:
            boxes.append(f"{output_dir / cls / (inp.stem + '.png')}\n")
            failures.append(f"{inp.path}\t{rec.reason}\n")
    write_text_atomic(box_file, "".join(boxes))
    write_text_atomic(failures_file, "".join(failures))


def run_align(config: AlignConfig, *, quiet: bool = False) -> AlignSummary:
    """Align a dataset.

    Args:
        config: the ``align`` options.
        quiet: no progress bar or summary table.

    Returns:
        The run's summary.

    Raises:
        InputError: bad input folder, bad ``--shard`` or ``--mode``, or an output folder
            aligned with other settings.
        FacenetError: a worker process failed.
    """
    if config.input_dir is None:
        raise InputError("facenet align INPUT_DIR OUTPUT_DIR: INPUT_DIR is missing")
    if config.output_dir is None:
        raise InputError("facenet align INPUT_DIR OUTPUT_DIR: OUTPUT_DIR is missing")
    return align_dataset(config, quiet=quiet)


def align_dataset(
    config: AlignConfig, *, quiet: bool = False, wait: bool = False, show_summary: bool = True
) -> AlignSummary:
    """Align ``config.input_dir`` into ``config.output_dir`` (see ``run_align``).

    ``wait``: when another run is writing the same output folder, wait for it to finish.
    """
    assert config.input_dir is not None and config.output_dir is not None
    if config.mode not in ("crop", "similarity"):
        raise InputError(f"--mode {config.mode!r}: expected crop or similarity")
    if config.image_size < 8:
        raise InputError(f"--image-size {config.image_size}: must be at least 8")
    start = time.monotonic()
    input_dir = Path(config.input_dir).expanduser()
    output_dir = Path(config.output_dir).expanduser()
    shard_index, shard_count = parse_shard(config.shard)
    suffix = _suffix(shard_index, shard_count)
    tmp_tag = f"s{shard_index}of{shard_count}"
    inputs = [
        i for i in list_inputs(input_dir, output_dir) if in_shard(i.rel, shard_index, shard_count)
    ]
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{output_dir}: cannot create output directory ({exc.strerror})") from None
    box_file = output_dir / f"{BOX_FILE}{suffix}.txt"
    failures_file = output_dir / f"{FAILURES_FILE}{suffix}.txt"
    journal = Journal(output_dir / f"{JOURNAL_FILE}{suffix}.jsonl", settings_of(config))
    with journal.open(wait=wait):
        done_before = {
            i.rel
            for i in inputs
            if i.rel in journal.records and journal.records[i.rel].sig == i.sig
        }
        _remove_stale_crops(inputs, journal, done_before)
        bs = max(config.batch_size, 1)
        tasks = []
        for c in range(0, len(inputs), bs):
            chunk = tuple(inputs[c : c + bs])
            todo = tuple(i.rel not in done_before for i in chunk)
            if any(todo):
                tasks.append(ChunkTask(c // bs, chunk, todo))
        if config.random_order:
            random.shuffle(tasks)
        new_records: list[Record] = []
        if tasks:
            _clean_tmp(inputs, tmp_tag)
            new_records = _process(
                config, tasks, journal, tmp_tag, len(inputs), len(done_before), quiet
            )
        _compact(journal, inputs, output_dir, box_file, failures_file)
    recs = [journal.records[i.rel] for i in inputs if i.rel in journal.records]
    summary = AlignSummary(
        input_dir=input_dir,
        output_dir=output_dir,
        total=len(inputs),
        skipped=len(done_before),
        processed=len(new_records),
        aligned=sum(1 for r in recs if r.faces),
        faces=sum(len(r.faces) for r in recs),
        failures=dict(Counter(_reason_kind(r.reason) for r in recs if not r.faces)),
        seconds=time.monotonic() - start,
        box_file=box_file,
        failures_file=failures_file,
    )
    if not quiet and show_summary:
        _print_summary(summary)
    return summary


def _reason_kind(reason: str | None) -> str:
    return (reason or "unknown").split(" (")[0]


def _process(
    config: AlignConfig,
    tasks: list[ChunkTask],
    journal: Journal,
    tmp_tag: str,
    total: int,
    done: int,
    quiet: bool,
) -> list[Record]:
    from facenet_cli.progress import progress_bars

    pending = sum(sum(t.todo) for t in tasks)
    workers = config.workers or auto_workers(cpu_count(), pending)
    workers = max(1, min(workers, len(tasks)))
    threads = max(1, cpu_count() // workers)
    new: list[Record] = []
    faces = failures = 0
    started = time.monotonic()

    def report(progress: Any, task_id: Any, records: list[Record]) -> None:
        nonlocal faces, failures
        journal.append(records)
        new.extend(records)
        faces += sum(len(r.faces) for r in records)
        failures += sum(1 for r in records if not r.faces)
        rate = len(new) / max(time.monotonic() - started, 1e-9)
        progress.update(
            task_id,
            advance=len(records),
            faces=f"{faces} faces",
            failures=f"{failures} failed",
            rate=f"{rate:.1f} img/s",
        )

    bars = progress_bars("faces", "failures", "rate") if not quiet else _quiet_bars()
    with bars as progress:
        task_id = progress.add_task("Aligning", total=total, faces="", failures="", rate="")
        progress.update(task_id, completed=done)

        def sink(records: list[Record]) -> None:
            report(progress, task_id, records)

        if workers == 1:
            _run_inline(config, tasks, tmp_tag, sink)
        else:
            _run_pool(config, tasks, tmp_tag, workers, threads, sink)
    return new


class _quiet_bars:
    """A do-nothing progress (for library calls and tests)."""

    def __enter__(self) -> Any:
        from facenet_cli.progress import PlainProgress

        return PlainProgress(interval=float("inf"), stream=open(os.devnull, "w"))  # noqa: SIM115

    def __exit__(self, *exc: object) -> None:
        return None


def _run_inline(config: AlignConfig, tasks: list[ChunkTask], tmp_tag: str, report: Any) -> None:
    from facenet_cli.align.detector import configure_tensorflow

    configure_tensorflow(cpu_count(), config.gpu_memory_fraction)
    aligner = ChunkAligner(config, tmp_tag)
    try:
        for _task, records in aligner.chunks(iter(tasks)):
            report(records)
    finally:
        aligner.close()


def _run_pool(
    config: AlignConfig,
    tasks: list[ChunkTask],
    tmp_tag: str,
    workers: int,
    threads: int,
    report: Any,
) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
    task_q = ctx.Queue(maxsize=2 * workers)
    result_q = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(config, tmp_tag, threads, task_q, result_q, os.getpid()),
            daemon=True,
            name=f"align-worker-{n}",
        )
        for n in range(workers)
    ]
    for p in procs:
        p.start()
    pending = list(reversed(tasks))
    outstanding = 0
    sentinels = 0
    remaining = len(tasks)
    try:
        while remaining:
            while pending and outstanding < 2 * workers:
                task_q.put(pending.pop())
                outstanding += 1
            if not pending and sentinels < workers:
                for _ in range(workers - sentinels):
                    task_q.put(None)
                sentinels = workers
            try:
                msg = result_q.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise FacenetError(
                        f"align worker exited with code {dead[0].exitcode}; rerun to resume"
                    ) from None
                continue
            if msg[0] == "error":
                raise FacenetError(f"align worker failed: {msg[1]}; rerun to resume")
            if msg[0] == "done":
                outstanding -= 1
                remaining -= 1
                report([Record.from_json(json.loads(r)) for r in msg[2]])
    finally:
        for p in procs:
            if p.is_alive() and remaining:
                p.kill()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()


def _print_summary(s: AlignSummary) -> None:
    from rich.table import Table

    from facenet_cli.progress import console

    table = Table(title=f"facenet align: {s.input_dir} -> {s.output_dir}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    table.add_row("inputs (this shard)", str(s.total))
    table.add_row("done in earlier runs", str(s.skipped))
    table.add_row("processed now", str(s.processed))
    table.add_row("aligned images", str(s.aligned))
    table.add_row("faces written", str(s.faces))
    for kind, n in sorted(s.failures.items()):
        table.add_row(f"failed: {kind}", str(n))
    table.add_row("time", f"{s.seconds:.1f} s")
    table.add_row("images/s", f"{s.images_per_second:.1f}")
    table.add_row("bounding boxes", str(s.box_file))
    table.add_row("failures", str(s.failures_file))
    console.print(table)
