"""The board: reading event files, flush-to-screen latency, idle CPU.

1. Reading a log directory of 1,000,000 scalar events (10 runs x 10 tags x 10,000 steps, laid
   out as TensorFlow 2's tf.summary writes them) with ``facenet_cli.events.LogdirReader`` versus
   TensorBoard's ``EventAccumulator`` on the same files; then the same million scalars as the
   training loop writes them (one event per step, ten ``simple_value`` fields each). Like
   with like: both start cold, both keep every point (``size_guidance={"scalars": 0,
   "tensors": 0}``; tf.summary scalars are tensor summaries, so EventAccumulator files them
   under tensors), page cache warm for both.
   With TensorFlow installed, EventAccumulator reads records through TensorFlow's C++ reader.
2. Flush-to-screen latency: a writer appends and flushes one event while the board runs
   (headless Textual, default 0.5 s poll); time until the new step is in the painted header.
   At 80x24 (one chart) and at 200x50 (the grid: six charts redrawn per change).
3. Idle CPU: ``facenet board`` on a pseudo-terminal watching 10 runs whose files do not change
   (last written ten minutes before); CPU seconds of the process (all threads) per wall second.
   At 80x24 and at 200x50.

Targets: >= 10x, < 1 s, < 2% of one core. Rows 2 and 3 report the target as the "baseline"
so the ratio column reads as headroom (above 1 = within target).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from benchmarks.harness import Comparison, compare

RUNS, TAGS = 10, 10
# EventAccumulator loads TensorFlow when it is installed: keep its start-up chatter quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class _Budget(Comparison):
    """A measurement against a fixed budget (ratio = budget / measured)."""

    def describe(self, seconds: float) -> str:
        if self.unit_name == "cpu":
            return f"{seconds * 100:.2f}% of a core"
        return f"{seconds * 1e3:.0f} ms"


def _write_logdir(root: Path, steps: int, *, per_step: bool = False) -> int:
    """RUNS x TAGS x steps scalars; returns how many.

    Laid out as tf.summary writes them (one tensor summary per event, metadata on each), or
    with ``per_step`` as the training loop writes them (one event per step holding every tag
    as a ``simple_value``).
    """
    from tensorboard.compat.proto import event_pb2, summary_pb2

    from facenet_cli.events import EVENT_FILE_PREFIX, frame_record

    for r in range(RUNS):
        run = root / f"run-{r:02d}"
        run.mkdir(parents=True)
        version = event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2")
        chunks = [frame_record(version.SerializeToString())]
        for s in range(steps):
            values = []
            for t in range(TAGS):
                number = (s * 7 + t) % 101 / 100
                value = summary_pb2.Summary.Value(tag=f"train/tag_{t}")
                if per_step:
                    value.simple_value = number
                else:
                    value.metadata.plugin_data.plugin_name = "scalars"
                    value.tensor.dtype = 1
                    value.tensor.tensor_shape.SetInParent()
                    value.tensor.tensor_content = struct.pack("<f", number)
                values.append(value)
            for group in [values] if per_step else [[v] for v in values]:
                summary = summary_pb2.Summary(value=group)
                event = event_pb2.Event(wall_time=1.7e9 + s * 0.1, step=s, summary=summary)
                chunks.append(frame_record(event.SerializeToString()))
        (run / f"{EVENT_FILE_PREFIX}1700000000.bench.{r}.v2").write_bytes(b"".join(chunks))
    return RUNS * TAGS * steps


def _bench_read(quick: bool, *, per_step: bool = False) -> Comparison:
    from facenet_cli.events import LogdirReader

    steps = 1_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        total = _write_logdir(root, steps, per_step=per_step)

        def ours() -> int:
            reader = LogdirReader(root)
            reader.poll(rescan=True)
            n = sum(len(s) for run in reader.runs.values() for s in run.series.values())
            assert n == total, n
            return n

        def tensorboard() -> int:
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

            n = 0
            for run in sorted(root.iterdir()):
                acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
                acc.Reload()
                tags = acc.Tags()
                n += sum(len(acc.Tensors(t)) for t in tags["tensors"])
                n += sum(len(acc.Scalars(t)) for t in tags["scalars"])
            assert n == total, n
            return n

        # One small pass first: imports (TensorFlow for the baseline) stay out of the timings.
        ours()
        small = root / "run-00"
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        EventAccumulator(str(small)).Reload()
        if per_step:
            name = f"board: read {total:,} scalars ({RUNS} runs, {TAGS} per event)"
            layout = "training loop's layout: one event per step, simple_value fields"
        else:
            name = f"board: read {total:,} scalar events ({RUNS} runs)"
            layout = "tf.summary layout"
        result = compare(
            name,
            ours,
            tensorboard,
            ours_label="LogdirReader",
            baseline_label="EventAccumulator, keep all",
            repeats=2 if per_step else 3,  # keeps the whole benchmark near five minutes
            warmup=0,
            units=total,
            unit_name="scalars",
            target=">= 10x",
            notes=f"cold reader each call; same files; {layout}",
        )
    return result


async def _latency_samples(root: Path, n: int, size: tuple[int, int]) -> list[float]:
    from facenet_cli.config import BoardConfig
    from facenet_cli.events import EventWriter
    from tui.app import BoardApp
    from tui.widgets import RunHeader

    run = root / "live"
    run.mkdir(parents=True)
    writer = EventWriter(run, flush_secs=0)  # every write reaches the file at once
    writer.add_scalar("loss", 1.0, 0)
    app = BoardApp(BoardConfig(logdir=root), notify_alerts=False)  # default 0.5 s poll
    samples: list[float] = []
    async with app.run_test(size=size) as pilot:
        while not app.loaded.is_set():
            await pilot.pause(0.01)
        header = app.query_one(RunHeader)
        for i in range(1, n + 1):
            step = 1000 * i
            await asyncio.sleep(0.137 * (i % 4))  # land at different points of the poll cycle
            writer.add_scalar("loss", 0.5, step)
            t0 = time.perf_counter()
            while f"step {step:,}" not in str(header.content):
                await pilot.pause(0.005)
            await pilot.pause()  # let the compositor paint it
            samples.append(time.perf_counter() - t0)
    writer.close()
    return samples


def _bench_latency(quick: bool, size: tuple[int, int] = (80, 24)) -> Comparison:
    with tempfile.TemporaryDirectory() as tmp:
        samples = asyncio.run(_latency_samples(Path(tmp), 5 if quick else 20, size))
    wide = size != (80, 24)
    result = _Budget(
        "board: flush-to-screen latency" + (f", {size[0]}x{size[1]} grid" if wide else ""),
        f"BoardApp at {size[0]}x{size[1]}, 0.5 s poll",
        "target 1 s",
        samples,
        [1.0] * len(samples),
        target="< 1 s",
    )
    result.extra["max"] = f"{max(samples) * 1e3:.0f} ms"
    return result


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bench_idle(quick: bool, size: tuple[int, int] = (80, 24)) -> Comparison:
    from facenet_cli.events import EVENT_FILE_GLOB

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_logdir(root, 200)  # 10 runs, 2,000 points each, then nothing changes
        quiet = time.time() - 600  # last written ten minutes ago: ages tick once a minute
        for f in root.glob(f"*/{EVENT_FILE_GLOB}"):
            os.utime(f, (quiet, quiet))
        master, slave = pty.openpty()
        cols, rows = size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(cols), "LINES": str(rows)}
        script = Path(sys.executable).with_name("facenet")
        argv = [str(script)] if script.exists() else [sys.executable, "-m", "facenet_cli.cli"]
        proc = subprocess.Popen(
            [*argv, "board", str(root)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            close_fds=True,
        )
        os.close(slave)
        stop = threading.Event()

        def drain() -> None:  # a terminal that never reads would block the app
            while not stop.is_set():
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:
                    break

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            time.sleep(8.0)  # start-up and the first read of every file
            assert proc.poll() is None, "facenet board exited early"
            window = 5.0 if quick else 10.0
            samples = []
            for _ in range(2 if quick else 3):
                c0, t0 = _cpu_seconds(proc.pid), time.monotonic()
                time.sleep(window)
                samples.append((_cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            stop.set()
            os.close(master)
    wide = size != (80, 24)
    result = _Budget(
        "board: idle CPU, 10 runs" + (f", {size[0]}x{size[1]} grid" if wide else ""),
        f"facenet board on a pty, {size[0]}x{size[1]}",
        "target 2% of a core",
        samples,
        [0.02] * len(samples),
        unit_name="cpu",
        target="< 2%",
    )
    result.extra["windows"] = f"{len(samples)} x {window:.0f} s"
    return result


def run(quick: bool) -> list[Comparison]:
    """The board measurements: reading, latency and idle CPU at 80x24 and 200x50."""
    wide = (200, 50)
    results = [
        _bench_read(quick),
        _bench_read(quick, per_step=True),
        _bench_latency(quick),
        _bench_latency(quick, wide),
        _bench_idle(quick),
        _bench_idle(quick, wide),
    ]
    for r in results[2:]:
        r.extra.setdefault("median", r.describe(statistics.median(r.ours_s)))
    return results
