"""The coordinator of an alignment run: plans the chunks, runs the workers, keeps the journal.

Work is cut into fixed chunks of ``batch_size`` consecutive inputs (in sorted order, after the
``--shard`` filter). A chunk is the unit handed to one worker process and detected as one batch,
so a rerun recomputes a half-finished chunk with exactly the same batch and gets the same bytes.
Each worker decodes its next chunk in a thread while it detects the current one, writes the crops
atomically and reports records back; only the coordinating process appends to the journal.
"""

from __future__ import annotations

import json
import os
import queue
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facenet_cli.align.inputs import AlignInput, in_shard, parse_shard, scan_inputs
from facenet_cli.align.journal import Journal, Record, write_text_atomic
from facenet_cli.align.worker import ChunkAligner, ChunkTask, worker_main
from facenet_cli.config import AlignConfig
from facenet_cli.cpu import cpu_count
from facenet_cli.data.dataset import subfolder_warning
from facenet_cli.errors import FacenetError, InputError, StorageError

BOX_FILE = "bounding_boxes"
FAILURES_FILE = "failures"
JOURNAL_FILE = ".align-journal"


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


def align_dataset(
    config: AlignConfig, *, quiet: bool = False, wait: bool = False, show_summary: bool = True
) -> AlignSummary:
    """Align ``config.input_dir`` into ``config.output_dir`` (see ``pipeline.run_align``).

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
    listed, nested = scan_inputs(input_dir, output_dir)
    inputs = [i for i in listed if in_shard(i.rel, shard_index, shard_count)]
    if (note := subfolder_warning(nested)) is not None:
        from facenet_cli.progress import console

        console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"{output_dir}: cannot create output directory ({exc.strerror})"
        ) from None
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
            target=worker_main,
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
