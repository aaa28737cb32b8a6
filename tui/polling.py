"""The board's polling thread and what it hands the UI: small messages, and run summaries.

The thread reads new bytes from every event file and, while a GPU view is on screen, asks NVML;
it never touches a widget, it posts :class:`RunsChanged` and :class:`GpusRead`. The UI turns
changed runs into :class:`~tui.model.RunSummary` objects through a :class:`SummaryCache`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from facenet_cli import events as ev
from textual.message import Message

from tui import model
from tui.gpu import GpuView, Nvml, run_of_process

GPU_POLL_S = 2.0


class RunsChanged(Message):
    """Posted by the polling thread: these runs have new data or a new status."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names


class GpusRead(Message):
    """Posted by the polling thread with NVML's latest view and the runs of its processes."""

    def __init__(self, view: GpuView, runs_by_pid: dict[int, str]) -> None:
        super().__init__()
        self.view = view
        self.runs_by_pid = runs_by_pid


def poll_forever(
    reader: ev.LogdirReader,
    nvml: Nvml,
    stop: threading.Event,
    interval: float,
    post: Callable[[Message], object],
    gpu_wanted: Callable[[], bool],
) -> None:
    """Poll ``reader`` every ``interval`` seconds (and NVML while wanted) until ``stop``."""
    first = True
    next_gpu = 0.0
    while not stop.is_set():
        changed = reader.poll()
        if changed or first:
            post(RunsChanged(frozenset(changed)))
            first = False
        now = time.monotonic()
        if gpu_wanted() and now >= next_gpu:
            next_gpu = now + GPU_POLL_S
            view = nvml.read()
            with reader.lock:
                dirs = {name: run.path for name, run in reader.runs.items()}
            pids = [p.pid for g in view.gpus for p in g.processes]
            owners = {pid: run_of_process(pid, dirs) for pid in pids}
            post(GpusRead(view, {pid: run for pid, run in owners.items() if run}))
        stop.wait(interval)


class SummaryCache:
    """Every run's summary, recomputed from its points only when its version changed.

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
        self.summaries: dict[str, model.RunSummary] = {}
        self.unreadable: dict[Path, str] = {}
        self._stats: dict[str, model.RunStats] = {}
        self._alerts_seen: set[tuple[str, str, str]] = set()

    def update(self, names: set[str] | frozenset[str]) -> bool:
        """Refresh the summaries of ``names`` and the unreadable entries; True on any change."""
        now = self.clock()
        changed = False
        with self.reader.lock:
            for name in names:
                run = self.reader.runs.get(name)
                if run is None:
                    continue
                stats = self._stats.get(name)
                if stats is None or stats.version != run.version:
                    stats = self._stats[name] = model.run_stats(run, self.models_dir)
                summary = model.summarize(run, now, stats)
                if summary != self.summaries.get(name):
                    self.summaries[name] = summary
                    changed = True
            unreadable = self.reader.unreadable
        if unreadable != self.unreadable:
            self.unreadable = unreadable
            changed = True
        return changed

    def ordered(self) -> list[model.RunSummary]:
        """The summaries by run name."""
        return [self.summaries[n] for n in sorted(self.summaries)]

    def new_alerts(self, *, infos: bool) -> list[tuple[str, model.Alert]]:
        """Alerts not reported before, as ``(run, alert)``; each is reported once (a new best
        accuracy once per value). Infos only when ``infos`` (not for what was there at start)."""
        out = []
        for s in self.ordered():
            for a in s.alerts:
                key = (s.name, a.kind, a.message if a.kind == "new_best" else "")
                if key not in self._alerts_seen:
                    self._alerts_seen.add(key)
                    if infos or a.severity == model.WARNING:
                        out.append((s.name, a))
        return out
