"""The board's polling thread: every file it reads, and what it hands the UI (no Textual here).

The thread owns the log directory's reader. It reads new bytes from every event file, the
runs' ``config.toml`` files and marker files, and, while a GPU view is on screen, asks NVML;
it computes each run's :class:`~tui.model.RunSummary` at the clock and copies out the new
points (:mod:`tui.points`). It hands the UI small dataclasses through ``post``: a
:class:`RunsRead` when anything changed, a :class:`GpusRead` for NVML. The UI renders those
and never reads a file, lists a folder or takes the reader's lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facenet_cli import events as ev

from tui import model
from tui.gpu import GpuView, Nvml, run_of_process
from tui.points import PointsCopier, RunPoints

GPU_POLL_S = 2.0
TICK_S = 1.0
"""Ages and statuses move with the clock even when no file changes: summaries this often."""
CONFIG_POLL_S = 2.0
"""How often every run's ``config.toml`` is looked for again (one may appear or change)."""

Config = tuple[dict[str, Any], str]
"""A run's settings and the file they came from."""


@dataclass(frozen=True)
class RunsRead:
    """Posted by the polling thread: every run's summary and settings, and the new points."""

    summaries: dict[str, model.RunSummary]
    unreadable: dict[Path, str]
    points: dict[str, RunPoints]
    """The runs with new points or a new status (a run not here has not changed)."""
    configs: dict[str, Config | None]


@dataclass(frozen=True)
class GpusRead:
    """Posted by the polling thread with NVML's latest view and the runs of its processes."""

    view: GpuView
    runs_by_pid: dict[int, str]


_UNSEEN = object()


class RunFeed:
    """Every run's summary, settings and new points, recomputed only when they can change.

    Used on the polling thread only: it reads files and takes the reader's lock.

    Args:
        reader: The log directory's reader.
        clock: Seconds since the epoch (fixed in tests).
        models_dir: Where to look for the runs' ``config.toml`` first.
    """

    def __init__(
        self, reader: ev.LogdirReader, clock: Callable[[], float], models_dir: Path | None
    ) -> None:
        self.reader = reader
        self.clock = clock
        self.models_dir = models_dir
        self._summaries: dict[str, model.RunSummary] = {}
        self._configs: dict[str, Config | None] = {}
        self._stats: dict[str, model.RunStats] = {}
        self._copied_version: dict[str, int] = {}
        self._unreadable: dict[Path, str] = {}
        self._copier = PointsCopier()

    def read(self, *, tick: bool, configs: bool, always: bool = False) -> RunsRead | None:
        """What changed since the last call; None when nothing did (unless ``always``).

        Args:
            tick: Summarise every run at the clock (ages, stalls), not only the changed ones.
            configs: Look for every run's ``config.toml`` again, not only new runs'.
            always: Return the current state even when nothing changed.
        """
        with self.reader.lock:
            runs = list(self.reader.runs.values())
        changed = self._read_configs(runs, every=configs)
        now = self.clock()
        points: dict[str, RunPoints] = {}
        with self.reader.lock:
            for run in runs:
                stats = self._stats.get(run.name)
                fresh = stats is None or stats.version != run.version
                if fresh:
                    config = self._configs.get(run.name)
                    stats = model.run_stats(run, self.models_dir, config[0] if config else {})
                    self._stats[run.name] = stats
                if fresh or tick or run.name not in self._summaries:
                    summary = model.summarize(run, now, stats)
                    if summary != self._summaries.get(run.name):
                        self._summaries[run.name] = summary
                        changed = True
                if self._copied_version.get(run.name) != run.version:
                    self._copied_version[run.name] = run.version
                    points[run.name] = self._copier.copy(run)
            unreadable = self.reader.unreadable
        if unreadable != self._unreadable:
            self._unreadable = unreadable
            changed = True
        if not (changed or points or always):
            return None
        return RunsRead(dict(self._summaries), dict(unreadable), points, dict(self._configs))

    def _read_configs(self, runs: list[ev.RunState], *, every: bool) -> bool:
        """Look for the runs' ``config.toml`` (new runs', or ``every`` run's); True on a change.

        Outside the reader's lock: a run's name and folder never change.
        """
        changed = False
        for run in runs:
            if not every and run.name in self._configs:
                continue
            found = model.run_config(run, self.models_dir)
            config = None if found is None else (found[0], str(found[1]))
            if config != self._configs.get(run.name, _UNSEEN):
                self._configs[run.name] = config
                self._stats.pop(run.name, None)  # the planned steps may come from it
                changed = True
        return changed


def poll_forever(
    feed: RunFeed,
    nvml: Nvml,
    stop: threading.Event,
    interval: float,
    post: Callable[[RunsRead | GpusRead], object],
    gpu_wanted: Callable[[], bool],
) -> None:
    """Poll ``feed`` every ``interval`` seconds (and NVML while wanted) until ``stop``.

    The first poll is always posted (the UI then knows the log directory was read, runs or not).
    """
    reader = feed.reader
    first = True
    next_tick = next_configs = next_gpu = 0.0
    while not stop.is_set():
        reader.poll()
        now = time.monotonic()
        tick, configs = now >= next_tick, now >= next_configs
        if tick:
            next_tick = now + TICK_S
        if configs:
            next_configs = now + CONFIG_POLL_S
        update = feed.read(tick=tick, configs=configs, always=first)
        if update is not None:
            post(update)
            first = False
        if gpu_wanted() and now >= next_gpu:
            next_gpu = now + GPU_POLL_S
            view = nvml.read()
            with reader.lock:
                dirs = {name: run.path for name, run in reader.runs.items()}
            pids = [p.pid for g in view.gpus for p in g.processes]
            owners = {pid: run_of_process(pid, dirs) for pid in pids}
            post(GpusRead(view, {pid: run for pid, run in owners.items() if run}))
        stop.wait(interval)
