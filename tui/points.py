"""The points the board draws, handed from the polling thread to the UI (no Textual here).

The polling thread owns the reader; under its lock a :class:`PointsCopier` copies out what is
new in a run since the last copy (:class:`RunPoints`: the new points of each tag, or all of
them when the reader thinned or replaced a tag). The UI thread keeps its own :class:`Run` per
run, appends what it is handed and draws from that, so it never takes the reader's lock nor
waits on a poll. Only steps and values travel: wall times serve the run summaries, which the
polling thread computes.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

import numpy as np
from facenet_cli import events as ev


@dataclass(frozen=True)
class SeriesPoints:
    """New points of one tag: appended to what the UI has, or all of them (``replace``)."""

    steps: np.ndarray
    values: np.ndarray
    replace: bool
    thinned: int
    latest: tuple[int, float, float] | None


@dataclass(frozen=True)
class RunPoints:
    """What is new in one run's points since the last copy."""

    label: str
    tags: tuple[str, ...]
    """Every tag the run has now: a tag the UI holds that is not here is gone (a re-read)."""
    series: dict[str, SeriesPoints]
    """The tags with new points."""


@dataclass
class _Copied:
    """What was last copied of one tag, to tell an append from a rewrite."""

    series: ev.ScalarSeries
    steps: array[int]
    n: int
    last: tuple[int, float, bytes] | None
    latest: tuple[int, float, float] | None
    thinned: int


def _point(series: ev.ScalarSeries, i: int) -> tuple[int, float, bytes]:
    # The value as bytes: a NaN equals itself here.
    return series.steps[i], series.wall_times[i], series.values[i : i + 1].tobytes()


def _copy(buf: array[int] | array[float], dtype: type, start: int, stop: int) -> np.ndarray:
    if stop <= start:
        return np.empty(0, dtype=dtype)
    item = np.dtype(dtype).itemsize
    return np.frombuffer(buf, dtype=dtype, count=stop - start, offset=start * item).copy()


class PointsCopier:
    """Copies out of the reader what each run gained since the last copy (call under its lock).

    A tag whose points were only appended to (the same arrays, longer, the last copied point
    unchanged) sends the new points; a tag thinned, truncated by a resumed run or read again
    from the start sends all of its points.
    """

    def __init__(self) -> None:
        self._copied: dict[str, dict[str, _Copied]] = {}

    def copy(self, run: ev.RunState) -> RunPoints:
        """What is new in ``run`` (its tags with no new point are left out)."""
        before = self._copied.get(run.name, {})
        now: dict[str, _Copied] = {}
        out: dict[str, SeriesPoints] = {}
        for tag, s in run.series.items():
            n = len(s)
            old = before.get(tag)
            appended = (
                old is not None
                and old.series is s
                and old.steps is s.steps
                and n >= old.n
                and (old.last is None or _point(s, old.n - 1) == old.last)
            )
            start = old.n if appended and old is not None else 0
            now[tag] = _Copied(s, s.steps, n, _point(s, n - 1) if n else None, s.latest, s.thinned)
            if (
                appended
                and old is not None
                and (old.n, old.latest, old.thinned)
                == (
                    n,
                    s.latest,
                    s.thinned,
                )
            ):
                continue
            out[tag] = SeriesPoints(
                steps=_copy(s.steps, np.int64, start, n),
                values=_copy(s.values, np.float64, start, n),
                replace=not appended,
                thinned=s.thinned,
                latest=s.latest,
            )
        self._copied[run.name] = now
        return RunPoints(run.label, tuple(run.series), out)


class Series:
    """One tag's points as the UI holds them: grown in place, so appending is cheap."""

    __slots__ = ("_steps", "_values", "_n", "thinned", "latest")

    def __init__(self) -> None:
        self._steps = np.empty(0, dtype=np.int64)
        self._values = np.empty(0, dtype=np.float64)
        self._n = 0
        self.thinned = 1
        self.latest: tuple[int, float, float] | None = None

    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> np.ndarray:
        """The steps, oldest first (a read-only view: what is drawn never changes under it)."""
        return self._steps[: self._n]

    @property
    def values(self) -> np.ndarray:
        """The values, oldest first."""
        return self._values[: self._n]

    def apply(self, points: SeriesPoints) -> None:
        """Take what the polling thread copied."""
        k = len(points.steps)
        if points.replace:
            self._steps, self._values, self._n = points.steps, points.values, k
        else:
            if self._n + k > len(self._steps):
                size = max(self._n + k, 2 * len(self._steps), 64)
                # New arrays: views handed out earlier keep the old ones, unchanged.
                self._steps = np.concatenate(
                    [self._steps[: self._n], np.empty(size - self._n, np.int64)]
                )
                self._values = np.concatenate(
                    [self._values[: self._n], np.empty(size - self._n, np.float64)]
                )
            self._steps[self._n : self._n + k] = points.steps
            self._values[self._n : self._n + k] = points.values
            self._n += k
        self.thinned = points.thinned
        self.latest = points.latest


class Run:
    """One run's points as the UI holds them (only the UI thread touches it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.label = name
        self.series: dict[str, Series] = {}

    def apply(self, points: RunPoints) -> None:
        """Take what the polling thread copied of this run."""
        self.label = points.label
        if set(self.series) != set(points.tags):
            old = self.series
            self.series = {tag: old[tag] if tag in old else Series() for tag in points.tags}
        for tag, new in points.series.items():
            self.series[tag].apply(new)
