"""What has been read of a run: each tag's points, each file's read position, the run's state."""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_POINT_CAP = 1_000_000
"""Points kept per tag before the reader starts thinning that tag (and says so)."""
MARK_BYTES = 64
"""Bytes kept from both ends of what was read of a file, to recognise the same file later."""


class ScalarSeries:
    """One tag's points in step order: steps, wall times and values in compact arrays.

    Every point is kept up to ``cap``; past it the series keeps every other point and doubles
    ``thinned`` (the board shows the factor), and keeps taking one point in ``thinned`` so the
    density stays even. ``latest`` is always the newest point read, thinned or not.
    """

    __slots__ = ("steps", "wall_times", "values", "cap", "thinned", "_skip", "latest")

    def __init__(self, cap: int = DEFAULT_POINT_CAP) -> None:
        self.steps = array("q")
        self.wall_times = array("d")
        self.values = array("d")
        self.cap = max(2, cap)
        self.thinned = 1
        self._skip = 0  # points read since the newest stored one (while thinning)
        self.latest: tuple[int, float, float] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, wall_time: float, value: float) -> None:
        """Append a point; a step at or before the last one drops the points it replaces."""
        self.extend(
            np.array([step], dtype=np.int64),
            np.array([wall_time], dtype=np.float64),
            np.array([value], dtype=np.float64),
        )

    def extend(self, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray) -> None:
        """Append points in the order they were written.

        A resumed run writes steps again: a point is replaced by any later point at the same
        or an earlier step, which keeps the newest session's points, as TensorBoard does.
        """
        n = len(steps)
        if n == 0:
            return
        steps = np.asarray(steps, dtype=np.int64)
        suffix_min = np.minimum.accumulate(steps[::-1])[::-1]
        keep = np.ones(n, dtype=bool)
        keep[:-1] = steps[:-1] < suffix_min[1:]
        if len(self.steps) and suffix_min[0] <= self.steps[-1]:
            self.truncate(int(suffix_min[0]))
        self.latest = (int(steps[-1]), float(wall_times[-1]), float(values[-1]))
        if not keep.all():
            steps, wall_times, values = steps[keep], wall_times[keep], values[keep]
        if self.thinned > 1:
            # Keep taking one point in ``thinned`` so the density stays even.
            t = self.thinned
            idx = np.arange(max(0, t - 1 - self._skip), len(steps), t)
            self._skip = len(steps) - 1 - int(idx[-1]) if len(idx) else self._skip + len(steps)
            steps, wall_times, values = steps[idx], wall_times[idx], values[idx]
        else:
            self._skip = 0
        self.steps.frombytes(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
        self.wall_times.frombytes(np.ascontiguousarray(wall_times, dtype=np.float64).tobytes())
        self.values.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        while len(self.steps) >= self.cap:
            if len(self.steps) % 2 == 0:
                self._skip += self.thinned  # the newest stored point goes: count what it covered
            self.steps = self.steps[::2]
            self.wall_times = self.wall_times[::2]
            self.values = self.values[::2]
            self.thinned *= 2

    def truncate(self, step: int) -> None:
        """Drop the points at ``step`` and after (a resumed run replaces them)."""
        i = bisect.bisect_left(self.steps, step)
        if i < len(self.steps):
            del self.steps[i:]
            del self.wall_times[i:]
            del self.values[i:]
        if self.latest is not None and self.latest[0] >= step:
            self.latest = (
                (self.steps[-1], self.wall_times[-1], self.values[-1]) if self.steps else None
            )


@dataclass
class FileCursor:
    """How far one event file has been read."""

    path: Path
    offset: int = 0
    size: int = 0
    mtime: float = 0.0
    resyncing: bool = False
    prefix: str = ""
    """Put before every tag of the file: its folder below the run's, e.g. ``train/``."""
    identity: tuple[int, int] | None = None
    """``(st_dev, st_ino)`` when last read: another file under the same name differs."""
    head: bytes = b""
    """The file's first bytes (up to ``MARK_BYTES``) as read: a rewrite changes them."""
    tail: bytes = b""
    """The bytes just before ``offset`` (up to ``MARK_BYTES``: the last record's CRCs)."""


@dataclass
class RunState:
    """Everything read so far from one run's event files."""

    name: str
    path: Path
    series: dict[str, ScalarSeries] = field(default_factory=dict)
    files: dict[Path, FileCursor] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    events: int = 0
    corrupt_records: int = 0
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    last_write: float = 0.0
    """Newest modification time (local clock) of the run's event files."""
    marker: str | None = None
    """``"finished"`` or ``"failed"`` when train left a marker file, else None."""
    marker_reason: str = ""
    version: int = 0
    """Bumped on every change, so viewers can tell whether to redraw."""

    @property
    def label(self) -> str:
        """The name to show: the run ``"."`` (event files directly in the log directory, as in
        ``board LOGS/RUN``) is shown by its folder's name."""
        if self.name != ".":
            return self.name
        return self.path.resolve().name or str(self.path)  # ``board .`` names the folder too

    @property
    def last_step(self) -> int | None:
        """The largest step among the newest points of all tags."""
        steps = [s.latest[0] for s in self.series.values() if s.latest is not None]
        return max(steps) if steps else None

    def latest_values(self) -> dict[str, float]:
        """Tag -> newest value."""
        return {tag: s.latest[2] for tag, s in self.series.items() if s.latest is not None}
