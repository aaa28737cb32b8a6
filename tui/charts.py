"""What the board draws, computed from the reader's runs: chart lines, tag rows, the grid shape.

No widgets here: the app computes these from its own copy of the points (``tui.points``, as the
polling thread handed them over) and hands the results to its widgets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tui import model
from tui.panels import MARK_COLORS, Panel, Trace
from tui.points import Run
from tui.widgets import Line

SMOOTHING_WEIGHT = 0.6  # TensorBoard's default
SPARK_POINTS = 256  # the recent points a sparkline summarises
SPARK_WIDTH = 16

GRID_MIN_SIZE = (120, 36)
"""From this many columns and rows the board shows a grid of panels instead of one."""
PANEL_MIN_SIZE = (56, 10)
"""The smallest chart still legible in the grid (columns, rows)."""
FIXED_ROWS = 13
"""Rows taken by everything but the charts: header 2, run list up to 8, alerts, bar, footer."""


def grid_shape(width: int, height: int, panels: int) -> tuple[int, int]:
    """Columns and rows of the panel grid for a terminal of ``width`` x ``height``.

    ``(1, 1)`` below :data:`GRID_MIN_SIZE` (today's one-panel view); above it, as many panels
    as fit at :data:`PANEL_MIN_SIZE` or more, but no more cells than ``panels``.
    """
    if width < GRID_MIN_SIZE[0] or height < GRID_MIN_SIZE[1] or panels <= 1:
        return 1, 1
    cols = max(1, width // PANEL_MIN_SIZE[0])
    rows = max(1, (height - FIXED_ROWS) // PANEL_MIN_SIZE[1])
    n = min(panels, cols * rows)
    cols = min(cols, n)
    return cols, math.ceil(n / cols)


@dataclass(frozen=True)
class Shown:
    """One run drawn on a chart: the selected run (``color`` None: the traces' colours) or a
    marked run (one colour, its name before each label)."""

    run: Run
    color: str | None = None


def shown_runs(
    runs: Mapping[str, Run], selected: str | None, marks: tuple[str, ...]
) -> list[Shown]:
    """The selected run first, then every other marked run in its mark colour."""
    out = []
    if selected is not None and selected in runs:
        out.append(Shown(runs[selected]))
    for i, name in enumerate(marks):
        if name != selected and name in runs:
            out.append(Shown(runs[name], MARK_COLORS[i % len(MARK_COLORS)]))
    return out


def panel_lines(
    panel: Panel, shown: list[Shown], *, smoothing: bool
) -> tuple[list[Line], list[str]]:
    """The lines of ``panel`` for the shown runs, and notes on thinned series.

    The selected run draws every tag of each trace; a marked run draws the first tag of each
    trace that is compared (its name before the label, so the legend tells runs apart).
    """
    lines: list[Line] = []
    notes: list[str] = []
    for trace in panel.traces:
        for item in shown:
            tags = trace.resolve(item.run)
            if item.color is not None:
                if not trace.compare:
                    continue
                tags = tags[:1]
            colors = trace.colors if item.color is None else (item.color,)
            prefix = "" if item.color is None else f"{item.run.label}: "
            for (tag, label), color in zip(tags, colors, strict=False):
                got = _series_line(
                    item.run, tag, prefix + label, color, trace, smoothing, raw=item.color is None
                )
                if got is not None:
                    lines.extend(got[0])
                    if got[1]:
                        notes.append(got[1])
    return lines, notes


def tag_lines(tag: str, shown: list[Shown], *, smoothing: bool) -> list[Line]:
    """One tag of every shown run (the scalars view's chart)."""
    trace = Trace(((tag, tag),), smooth=True)
    lines: list[Line] = []
    for item in shown:
        prefix = "" if item.color is None else f"{item.run.label}: "
        got = _series_line(
            item.run, tag, prefix + tag, item.color or "cyan", trace, smoothing, raw=not prefix
        )
        if got is not None:
            lines.extend(got[0])
    return lines


def _series_line(
    run: Run,
    tag: str,
    name: str,
    color: str,
    trace: Trace,
    smoothing: bool,
    *,
    raw: bool,
) -> tuple[list[Line], str] | None:
    """A tag's line, smoothed when the trace and the user want: over its raw points in gray for
    the selected run (``raw``), alone for a marked run (the chart stays readable)."""
    series = run.series.get(tag)
    if series is None or not len(series):
        return None
    x = series.steps.astype(np.float64)
    y = series.values  # never changed in place: the UI's copy only grows past it
    note = f"{name}: every {series.thinned}th point kept" if series.thinned > 1 else ""
    if trace.smooth and smoothing and len(y) > 2:
        smoothed = Line(name, x, model.ema(y, SMOOTHING_WEIGHT), color, trace.yside)
        if not raw:
            return [smoothed], note
        return [Line(f"{name} (raw)", x, y, "gray", trace.yside), smoothed], note
    return [Line(name, x, y, color, trace.yside)], note


@dataclass(frozen=True)
class TagRow:
    """One tag of the scalars view: its newest point and a sparkline of its recent values."""

    tag: str
    step: int
    value: float
    spark: str


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: np.ndarray, width: int) -> str:
    """The series as ``width`` block characters (mean per bucket); blanks where not finite."""
    y = np.asarray(values, dtype=np.float64)
    if not len(y) or width <= 0:
        return ""
    edges = np.linspace(0, len(y), min(width, len(y)) + 1).astype(np.int64)
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(y), y, 0.0)
        counts = np.add.reduceat(np.isfinite(y).astype(np.float64), edges[:-1])
        sums = np.add.reduceat(finite, edges[:-1])
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    ok = np.isfinite(means)
    if not ok.any():
        return " " * len(means)
    lo, hi = float(means[ok].min()), float(means[ok].max())
    span = hi - lo
    levels = np.zeros(len(means), dtype=np.int64)
    if span > 0:
        levels[ok] = np.round((means[ok] - lo) / span * (len(SPARK_BLOCKS) - 1)).astype(np.int64)
    return "".join(SPARK_BLOCKS[lv] if good else " " for lv, good in zip(levels, ok, strict=True))


def tag_filter(pattern: str) -> re.Pattern[str] | None:
    """TensorBoard's tag filter: a case-insensitive regular expression; None when invalid."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error:
        return None


def tag_rows(run: Run | None) -> list[TagRow]:
    """Every scalar tag of ``run`` with its newest point and a sparkline, by tag name."""
    if run is None:
        return []
    rows = []
    for tag in sorted(run.series):
        series = run.series[tag]
        if series.latest is None:
            continue
        step, _, value = series.latest
        recent = series.values[-SPARK_POINTS:]
        rows.append(TagRow(tag, step, value, sparkline(recent, SPARK_WIDTH)))
    return rows
