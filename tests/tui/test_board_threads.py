"""The board reads files on its polling thread only: the event loop renders what it posted.

Every open, stat, listing and ``realpath`` made from ``tui/``'s code is recorded with the thread
that made it, and so is every use of the reader's lock, while the app runs headless through
each view; none may happen on the event loop's thread. The UI's copy of the points is checked
against the reader's through appends, a resumed run and thinning.
"""

from __future__ import annotations

import builtins
import io
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pytest
from board_eventlog import EventLog, event_file
from textual.widgets import DataTable

import tui
from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from tui.app import BoardApp
from tui.points import PointsCopier, Run
from tui.widgets import MetricChart

TUI = str(Path(tui.__file__).parent) + os.sep
NOW = 1.9e9


@dataclass(frozen=True)
class Access:
    what: str
    thread: int
    where: str  # the innermost frame of tui/ that asked


class AccessLog:
    """Records which thread made each file access of tui/'s code, and took the reader's lock."""

    def __init__(self) -> None:
        self.accesses: list[Access] = []
        self.recording = False

    def add(self, what: str, where: str) -> None:
        if self.recording:
            self.accesses.append(Access(what, threading.get_ident(), where))

    def wrap(self, what: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            frame = sys._getframe(1) if self.recording else None  # noqa: SLF001 - who asked
            while frame is not None:
                if frame.f_code.co_filename.startswith(TUI):
                    name = Path(frame.f_code.co_filename).name
                    self.add(what, f"{name}:{frame.f_lineno} {frame.f_code.co_name}")
                    break
                frame = frame.f_back
            return call(*args, **kwargs)

        return recorded

    def on(self, thread: int) -> list[Access]:
        return [a for a in self.accesses if a.thread == thread]


class RecordingLock:
    """The reader's lock, noting every thread that takes it."""

    def __init__(self, lock: Any, log: AccessLog) -> None:
        self._lock = lock
        self._log = log

    def _note(self, depth: int) -> None:
        frame = sys._getframe(depth)  # noqa: SLF001
        self._log.add("reader.lock", f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}")

    def acquire(self, *args: Any, **kwargs: Any) -> bool:
        self._note(2)
        return bool(self._lock.acquire(*args, **kwargs))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        self._note(2)
        return bool(self._lock.acquire())

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


@pytest.fixture
def accesses(monkeypatch: pytest.MonkeyPatch) -> Iterator[AccessLog]:
    """Opens (``open``, ``Path.read_text``), stats (``Path.exists``), listings, ``realpath``."""
    log = AccessLog()
    monkeypatch.setattr(builtins, "open", log.wrap("open", builtins.open))
    monkeypatch.setattr(io, "open", log.wrap("open", io.open))
    for name in ("stat", "lstat", "scandir", "listdir"):
        monkeypatch.setattr(os, name, log.wrap(name, getattr(os, name)))
    yield log


def _logs(tmp_path: Path) -> tuple[Path, EventLog]:
    """Two runs (one finished), one run's config.toml beside the log directory."""
    logs = tmp_path / "logs"
    live = EventLog(event_file(logs / "live"))
    for name, n in (("done", 30), ("live", 20)):
        log = live if name == "live" else EventLog(event_file(logs / name))
        for s in range(n):
            log.scalar(ev.LOSS, 1.0 / (1 + s), s, wall_time=NOW - n + s)
            log.scalar(ev.LEARNING_RATE, 0.1, s, wall_time=NOW - n + s)
        if log is not live:
            log.close()
    (logs / "done" / ev.FINISHED_MARKER).write_text("")
    folder = tmp_path / "models" / "live"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text("max_steps = 100\nlearning_rate = 0.1\n")
    return logs, live


def _points(app: BoardApp) -> int:
    """Points of the selected run's loss line."""
    chart = app.query_one("#loss-chart", MetricChart)
    return next((len(line.x) for line in chart.lines if line.label == "loss"), 0)


async def test_the_event_loop_never_reads_a_file_nor_takes_the_readers_lock(
    tmp_path: Path, accesses: AccessLog
) -> None:
    logs, live = _logs(tmp_path)
    app = BoardApp(
        BoardConfig(logdir=logs, poll_interval=0.02), clock=lambda: NOW, notify_alerts=False
    )
    app.reader.lock = RecordingLock(app.reader.lock, accesses)  # type: ignore[assignment]
    # From here on: building the app is Textual's business (it resolves CSS_PATH there), and
    # run_test runs the app on the test's own thread and event loop.
    accesses.recording = True
    loop = threading.get_ident()
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 10
        while not (app.loaded.is_set() and app.configs.get("live")):
            assert time.monotonic() < deadline, "the board did not load"
            await pilot.pause(0.02)
        assert app.summaries["live"].total_steps == 100  # planned steps from config.toml
        assert _points(app) == 30  # "done", the first run
        # Each view and each kind of key: another run, a mark, a panel, smoothing, the scalars
        # view and its filter, the settings view, help; then a writer appends a point.
        await pilot.press("j", "space", "k", "2", "s", "t", "slash", "l", "enter", "down")
        await pilot.press("v", "question_mark", "escape", "escape")
        settings = app.query_one("#settings", DataTable)
        rows = [str(settings.get_row_at(i)) for i in range(settings.row_count)]
        assert any("max_steps" in row for row in rows)  # the settings view got config.toml
        live.scalar(ev.LOSS, 0.01, 20, wall_time=NOW)
        await pilot.press("j")
        assert app.selected == "live"
        while _points(app) != 21:
            assert time.monotonic() < deadline, "the board missed the new point"
            await pilot.pause(0.02)
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        await pilot.press("q")
    live.close()
    assert accesses.on(loop) == [], "\n".join(map(str, accesses.on(loop)))
    # ...and the recorder saw the polling thread do the reading.
    worker = {a.thread for a in accesses.accesses} - {loop}
    read = {(a.what, a.where.split(":")[0]) for a in accesses.accesses if a.thread in worker}
    assert ("open", "model.py") in read  # config.toml
    assert ("scandir", "polling.py") in read  # the log directory, through the reader
    assert ("reader.lock", "polling.py") in read


def _same(reader: ev.LogdirReader, runs: dict[str, Run]) -> None:
    for name, run in reader.runs.items():
        mine = runs[name]
        assert list(mine.series) == list(run.series)
        for tag, s in run.series.items():
            got = mine.series[tag]
            assert got.steps.tolist() == list(s.steps), (name, tag)
            assert np.array_equal(got.values, np.asarray(s.values), equal_nan=True), (name, tag)
            assert (got.thinned, got.latest) == (s.thinned, s.latest)


def test_the_uis_copy_follows_appends_resumes_and_thinning(tmp_path: Path) -> None:
    log = EventLog(event_file(tmp_path / "r"))
    reader = ev.LogdirReader(tmp_path, cap=16)
    copier, runs = PointsCopier(), {"r": Run("r")}

    def poll() -> dict[str, int]:
        reader.poll(rescan=True)
        points = copier.copy(reader.runs["r"])
        runs["r"].apply(points)
        _same(reader, runs)
        return {tag: len(p.steps) for tag, p in points.series.items() if not p.replace}

    for s in range(10):
        log.scalar(ev.LOSS, float(s), s)
    log.scalar(ev.LEARNING_RATE, float("nan"), 0)
    poll()
    for s in range(10, 13):
        log.scalar(ev.LOSS, float(s), s)
    assert poll() == {ev.LOSS: 3}  # appended: only the new points travel
    assert poll() == {}  # nothing new: nothing sent
    for s in range(5, 9):  # resumed from step 5: the later points are replaced
        log.scalar(ev.LOSS, -float(s), s, wall_time=2e9 + s)
    assert ev.LOSS not in poll()  # sent whole
    for s in range(9, 40):  # past the cap: thinned
        log.scalar(ev.LOSS, float(s), s)
    poll()
    assert runs["r"].series[ev.LOSS].thinned > 1
    log.close()
