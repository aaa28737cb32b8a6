"""The facenet board Textual app: a run list on top, the selected run's charts below.

A polling thread reads new bytes from every event file (``facenet_cli.events.LogdirReader``)
and posts a small message when runs changed; the UI copies out the points it draws under the
reader's lock. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from facenet_cli.errors import EXIT_USAGE, FacenetError
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Container, Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from tui import model
from tui.gpu import GpuView, Nvml, format_gpus
from tui.panels import COMPARE_COLOR, PANELS, Panel, Trace, panel_by_key
from tui.widgets import (
    AlertBar,
    HelpScreen,
    Line,
    MetricChart,
    PanelBar,
    RunHeader,
    RunTable,
)

SMOOTHING_WEIGHT = 0.6  # TensorBoard's default
GPU_POLL_S = 2.0


class BoardUsageError(FacenetError):
    """Options that do not go together."""

    exit_code = EXIT_USAGE


class RunsChanged(Message):
    """Posted by the polling thread: these runs have new data or a new status."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names


class GpusRead(Message):
    """Posted by the polling thread with NVML's latest view."""

    def __init__(self, view: GpuView) -> None:
        super().__init__()
        self.view = view


class BoardApp(App[int]):
    """Live dashboard over the event files of every run under a log directory."""

    CSS_PATH = "board.tcss"
    TITLE = "facenet board"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("j", "move_run(1)", "Next run", show=False),
        Binding("k", "move_run(-1)", "Prev run", show=False),
        Binding("l,right", "move_panel(1)", "Panel"),
        Binding("h,left", "move_panel(-1)", "Panel", show=False),
        *(
            Binding(str(i), f"panel('{p.key}')", p.title, show=False)
            for i, p in enumerate(PANELS, 1)
        ),
        Binding("s", "toggle_smoothing", "Smooth"),
        Binding("c", "compare", "Compare"),
        Binding("question_mark", "help", "Help"),
    ]

    _main: Screen[object]
    """The board's own screen (set on mount); the help screen may be on top of it."""

    selected: reactive[str | None] = reactive(None, init=False)
    panel: reactive[str] = reactive("loss", init=False)
    smoothing: reactive[bool] = reactive(True, init=False)
    compare_with: reactive[str | None] = reactive(None, init=False)

    def __init__(
        self,
        config: BoardConfig,
        *,
        clock: Callable[[], float] = time.time,
        nvml: Nvml | None = None,
        tensorboard_url: str = "",
        notify_alerts: bool = True,
    ) -> None:
        super().__init__()
        self.notify_alerts = notify_alerts
        self.config = config
        self.clock = clock
        self.reader = ev.LogdirReader(config.logdir)
        self.nvml = nvml if nvml is not None else Nvml()
        self.tensorboard_url = tensorboard_url
        self.summaries: dict[str, model.RunSummary] = {}
        self._stats: dict[str, model.RunStats] = {}
        self.loaded = threading.Event()
        """Set once the first poll has been shown (tests and benchmarks wait on it)."""
        self.gpu_view = GpuView((), "")
        self._stop = threading.Event()
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = 0.0
        self._draw_cost = 0.0
        self._redraw_pending = False
        self._alerts_seen: set[tuple[str, str, str]] = set()
        self.exit_code = 0

    # ------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        """Header, run list, alerts, panel bar, the panels, footer."""
        yield RunHeader(id="header")
        yield RunTable(id="runs")
        yield AlertBar(id="alerts")
        yield PanelBar(id="panelbar")
        with Container(id="panels"):
            for p in PANELS:
                with Vertical(id=p.key, classes="panel"):
                    yield MetricChart(p.chart_title, id=f"{p.key}-chart")
                    if p.gpu_live:
                        yield Static("", id="gpu-live")
        yield Footer()

    def on_mount(self) -> None:
        """Start polling and a slow tick that keeps ages and statuses current."""
        self._main = self.screen
        self._main.query_one(RunHeader).show(None, str(self.config.logdir), self.tensorboard_url)
        self._show_panelbar()
        self._show_panels()
        self._main.query_one(RunTable).focus()
        self._poll_events()
        self.set_interval(1.0, self._tick)

    # ------------------------------------------------------------------------------ polling

    @work(thread=True, exclusive=True, name="poll")
    def _poll_events(self) -> None:
        """Read new events every poll interval and tell the UI which runs changed."""
        first = True
        next_gpu = 0.0
        while not self._stop.is_set():
            changed = self.reader.poll()
            if changed or first:
                self.post_message(RunsChanged(frozenset(changed)))
                first = False
            now = time.monotonic()
            if panel_by_key(self.panel).gpu_live and now >= next_gpu:
                next_gpu = now + GPU_POLL_S
                self.post_message(GpusRead(self.nvml.read()))
            self._stop.wait(self.config.poll_interval)

    def on_runs_changed(self, message: RunsChanged) -> None:
        """Summarise the changed runs and redraw what shows them."""
        self._summarize(message.names or set(self.reader.runs))
        with self._closing_ok():
            self._refresh_view(data_changed=message.names)
        self.loaded.set()

    def on_gpus_read(self, message: GpusRead) -> None:
        """Show NVML's live view (or why there is none)."""
        self.gpu_view = message.view
        with self._closing_ok():
            self._main.query_one("#gpu-live", Static).update(format_gpus(message.view))

    def _tick(self) -> None:
        """Ages and statuses move with the clock even when no file changes."""
        if self.reader.runs and self._summarize(set(self.reader.runs)):
            with self._closing_ok():
                self._refresh_view(data_changed=frozenset())

    @contextlib.contextmanager
    def _closing_ok(self) -> Iterator[None]:
        """Messages and timers can still arrive while the app closes and its widgets go.

        The board's widgets have fixed ids and exist for the app's whole life, so a missing
        one only means the screen is being torn down.
        """
        try:
            yield
        except NoMatches:
            pass

    def _summarize(self, names: set[str] | frozenset[str]) -> bool:
        """Refresh the summaries of ``names``; True when any of them changed."""
        now = self.clock()
        changed = False
        with self.reader.lock:
            for name in names:
                run = self.reader.runs.get(name)
                if run is None:
                    continue
                stats = self._stats.get(name)
                if stats is None or stats.version != run.version:
                    stats = self._stats[name] = model.run_stats(run)
                summary = model.summarize(run, now, stats)
                if summary != self.summaries.get(name):
                    self.summaries[name] = summary
                    changed = True
        return changed

    # ------------------------------------------------------------------------------ drawing

    def _ordered(self) -> list[model.RunSummary]:
        return [self.summaries[n] for n in sorted(self.summaries)]

    def _refresh_view(self, data_changed: frozenset[str] | set[str]) -> None:
        ordered = self._ordered()
        table = self._main.query_one(RunTable)
        table.show(ordered, self.compare_with)
        if self.selected is None and ordered:
            self.selected = ordered[table.cursor_row if table.cursor_row < len(ordered) else 0].name
        self._show_header()
        self._notify_new_alerts(ordered)
        if self.selected in data_changed or self.compare_with in data_changed:
            self._request_redraw()

    def _request_redraw(self) -> None:
        """Redraw for new data, but never spend more than about a fifth of the time drawing.

        Charts of a million points take a noticeable fraction of a second to smooth and
        decimate; a writer flushing faster than that must not keep the board busy.
        """
        wait = self._last_draw + 4 * self._draw_cost - time.monotonic()
        if wait <= 0:
            self._draw_charts(force=True)
        elif not self._redraw_pending:
            self._redraw_pending = True
            self.set_timer(wait, self._deferred_redraw)

    def _deferred_redraw(self) -> None:
        self._redraw_pending = False
        if self._stop.is_set():
            return
        with self._closing_ok():
            self._draw_charts(force=True)

    def _show_header(self) -> None:
        summary = self.summaries.get(self.selected) if self.selected else None
        self._main.query_one(RunHeader).show(summary, str(self.config.logdir), self.tensorboard_url)
        others = sum(1 for s in self.summaries.values() if s.warnings and s.name != self.selected)
        self._main.query_one(AlertBar).show(summary, others)

    def _show_panelbar(self) -> None:
        self._main.query_one(PanelBar).show(PANELS, self.panel, self.smoothing, self.compare_with)

    def _notify_new_alerts(self, summaries: list[model.RunSummary]) -> None:
        if not self.notify_alerts:
            return
        for s in summaries:
            for a in s.alerts:
                key = (s.name, a.kind, a.message if a.kind == "new_best" else "")
                if key in self._alerts_seen:
                    continue
                self._alerts_seen.add(key)
                if self.loaded.is_set() or a.severity == model.WARNING:
                    self.notify(
                        f"{s.name}: {a.message}",
                        severity="error" if a.severity == model.WARNING else "information",
                        timeout=8,
                    )

    def _lines(
        self, run_name: str | None, panel: Panel, *, compare: str | None
    ) -> tuple[list[Line], list[str]]:
        """The panel's lines for ``run_name`` (and ``compare``'s first line of each trace)."""
        lines: list[Line] = []
        notes: list[str] = []
        with self.reader.lock:
            run = self.reader.runs.get(run_name) if run_name else None
            other = self.reader.runs.get(compare) if compare else None
            for trace in panel.traces:
                for series_run, prefix, colors, tags in (
                    (run, "", trace.colors, trace.resolve(run)),
                    (other, f"{compare}: ", (COMPARE_COLOR,), trace.resolve(other)[:1]),
                ):
                    if series_run is None or (prefix and not trace.compare):
                        continue
                    for (tag, label), color in zip(tags, colors, strict=False):
                        series = series_run.series.get(tag)
                        if series is None or not len(series):
                            continue
                        x = np.frombuffer(series.steps, dtype=np.int64).astype(np.float64)
                        y = np.frombuffer(series.values, dtype=np.float64).copy()
                        if series.thinned > 1:
                            notes.append(f"{label}: every {series.thinned}th point kept")
                        lines.extend(self._styled(prefix + label, x, y, color, trace))
        return lines, notes

    def _styled(
        self, name: str, x: np.ndarray, y: np.ndarray, color: str, trace: Trace
    ) -> list[Line]:
        """A line as drawn: smoothed over its raw points when the trace and the user want."""
        if trace.smooth and self.smoothing and len(y) > 2:
            return [
                Line(f"{name} (raw)", x, y, "gray", trace.yside),
                Line(name, x, model.ema(y, SMOOTHING_WEIGHT), color, trace.yside),
            ]
        return [Line(name, x, y, color, trace.yside)]

    def _draw_charts(self, *, force: bool = False) -> None:
        key = (self.selected, self.panel, self.smoothing, self.compare_with)
        if not force and key == self._drawn:
            return
        self._drawn = key
        start = time.monotonic()
        try:
            self._draw_panel(panel_by_key(self.panel))
        finally:
            self._last_draw = time.monotonic()
            self._draw_cost = self._last_draw - start

    def _draw_panel(self, panel: Panel) -> None:
        other = self.compare_with if self.compare_with != self.selected else None
        lines, notes = self._lines(self.selected, panel, compare=other)
        chart = self._main.query_one(f"#{panel.key}-chart", MetricChart)
        chart.set_lines(lines, "; ".join(notes))

    # ------------------------------------------------------------------------------ reactives

    def watch_selected(self) -> None:
        """A new run is selected: header and charts follow."""
        self._show_header()
        self._draw_charts()

    def _show_panels(self) -> None:
        """Show the current panel, hide the others."""
        for p in PANELS:
            self._main.query_one(f"#{p.key}").display = p.key == self.panel

    def watch_panel(self, panel: str) -> None:
        """Switch the visible panel."""
        self._show_panels()
        self._show_panelbar()
        if panel_by_key(panel).gpu_live:
            self._main.query_one("#gpu-live", Static).update(
                format_gpus(self.gpu_view)
                if self.gpu_view.reason or self.gpu_view.gpus
                else "reading NVML..."
            )
        self._draw_charts()

    def watch_smoothing(self) -> None:
        """Redraw with or without smoothing."""
        self._show_panelbar()
        self._draw_charts()

    def watch_compare_with(self) -> None:
        """Redraw with or without the comparison run."""
        self._show_panelbar()
        self._main.query_one(RunTable).show(self._ordered(), self.compare_with)
        self._draw_charts()

    # ------------------------------------------------------------------------------ actions

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The cursor moved in the run list."""
        if event.row_key.value is not None:
            self.selected = event.row_key.value

    def action_move_run(self, delta: int) -> None:
        """Move the run-list cursor."""
        table = self._main.query_one(RunTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + delta)))

    def action_move_panel(self, delta: int) -> None:
        """Next / previous panel."""
        keys = [p.key for p in PANELS]
        self.panel = keys[(keys.index(self.panel) + delta) % len(keys)]

    def action_panel(self, key: str) -> None:
        """Show one panel."""
        self.panel = key

    def action_toggle_smoothing(self) -> None:
        """Smoothing on / off."""
        self.smoothing = not self.smoothing

    def action_compare(self) -> None:
        """Pin the selected run for comparison, or clear the pin."""
        self.compare_with = None if self.compare_with == self.selected else self.selected

    def action_help(self) -> None:
        """Show the keys."""
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Stop polling and leave with the alert-aware exit code."""
        self._stop.set()
        self.exit(0)

    def on_unmount(self) -> None:
        """Make sure the polling thread ends."""
        self._stop.set()


def run_board(config: BoardConfig) -> int:
    """Run ``facenet board``: the live app, or ``--once`` output; returns the exit code.

    Returns:
        0, or ``EXIT_ALERT`` (5) when ``--once`` finds an active warning.
    """
    if config.once:
        if config.tensorboard:
            raise BoardUsageError("--tensorboard needs the live board: drop --once")
        from tui.report import print_once

        return print_once(Path(config.logdir), as_json_output=config.json)
    if config.json:
        raise BoardUsageError("--json needs --once")
    tensorboard = None
    if config.tensorboard:
        from tui.tensorboard import start_tensorboard

        tensorboard = start_tensorboard(Path(config.logdir), config.port)
        print(f"TensorBoard: {tensorboard.url}", file=sys.stderr)
    try:
        app = BoardApp(config, tensorboard_url=tensorboard.url if tensorboard else "")
        code = app.run()
    finally:
        if tensorboard is not None:
            tensorboard.stop()
    return int(code or 0)
