"""The facenet board Textual app: a run list on top, the selected run's charts below.

A polling thread (``tui.polling``) owns the reader of every event file
(``facenet_cli.events.LogdirReader``) and reads every file the board shows: it posts the runs'
summaries, their settings and the new points as small dataclasses, and the UI draws from its own
copy of the points (``tui.points``) without ever reading a file or taking the reader's lock.
From 120x36 the charts are a grid of the key panels (``tui.charts.grid_shape``), below that one
panel at a time; resizing switches live. Besides the charts, a scalars view (every tag of any
TensorBoard writer) and a settings view (the marked runs' config.toml side by side).
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from facenet_cli.errors import EXIT_USAGE, FacenetError
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.events import Resize
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Input

from tui import charts, model
from tui.gpu import GpuView, Nvml
from tui.panels import MARK_COLORS, PANELS, Panel, panels_for
from tui.points import Run
from tui.polling import Config, GpusRead, RunFeed, RunsRead, poll_forever
from tui.views import ChartGrid, ConfigView, ScalarsView
from tui.widgets import AlertBar, HelpScreen, PanelBar, RunHeader, RunTable


class BoardUsageError(FacenetError):
    """Options that do not go together."""

    exit_code = EXIT_USAGE


class Polled(Message):
    """What the polling thread read (:class:`RunsRead` or :class:`GpusRead`), for the UI."""

    def __init__(self, update: RunsRead | GpusRead) -> None:
        super().__init__()
        self.update = update


class BoardApp(App[int]):
    """Live dashboard over the event files of every run under a log directory."""

    CSS_PATH = "board.tcss"
    TITLE = "facenet board"
    ENABLE_COMMAND_PALETTE = False  # every action has a key; the footer needs the room at 80
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("j", "move_run(1)", "Next run", show=False),
        Binding("k", "move_run(-1)", "Prev run", show=False),
        Binding("l,right", "move_panel(1)", "Panel"),
        Binding("h,left", "move_panel(-1)", "Panel", show=False),
        *(
            Binding(str(i), f"panel_number({i})", f"Panel {i}", show=False)
            for i in range(1, len(PANELS) + 1)
        ),
        Binding("space,c", "mark", "Mark"),
        Binding("s", "toggle_smoothing", "Smooth"),
        Binding("z", "toggle_zoom", "Zoom", show=False),
        Binding("t", "view('scalars')", "Scalars"),
        Binding("v", "view('config')", "Settings"),
        Binding("escape", "view('charts')", "Charts", show=False),
        Binding("slash", "filter", "Filter", show=False),
        Binding("question_mark", "help", "Help"),
    ]

    _main: Screen[object]
    """The board's own screen (set on mount); the help screen may be on top of it."""

    selected: reactive[str | None] = reactive(None, init=False)
    panel: reactive[str] = reactive("loss", init=False)
    smoothing: reactive[bool] = reactive(True, init=False)
    marks: reactive[tuple[str, ...]] = reactive((), init=False)
    """Runs overlaid on every chart and compared in the settings view, in marking order."""
    view: reactive[str] = reactive("charts", init=False)
    grid: reactive[tuple[int, int]] = reactive((1, 1), init=False)
    """Columns and rows of the chart grid; ``(1, 1)`` is the one-panel view."""
    zoom: reactive[bool] = reactive(False, init=False)
    tag: reactive[str | None] = reactive(None, init=False)
    """The tag charted in the scalars view."""

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
        """The polling thread's: the UI never touches it (nor its lock)."""
        self.nvml = nvml if nvml is not None else Nvml()
        self.tensorboard_url = tensorboard_url
        self._feed = RunFeed(self.reader, clock, config.models_dir)
        self.summaries: dict[str, model.RunSummary] = {}
        """Run name -> its latest summary, as the polling thread posted it."""
        self.runs: dict[str, Run] = {}
        """Run name -> the points drawn, copied from what the polling thread posted."""
        self.configs: dict[str, Config | None] = {}
        """Run name -> its ``config.toml`` settings and path, as posted (None: none found)."""
        self.unreadable: dict[Path, str] = {}
        self._alerts = model.AlertLog()
        self.loaded = threading.Event()
        """Set once the first poll has been shown (tests and benchmarks wait on it)."""
        self.gpu_view = GpuView((), "")
        self.runs_by_pid: dict[int, str] = {}
        self.available: list[Panel] = list(panels_for(set()))
        """The panels for the selected and marked runs, in table order."""
        self.on_screen: list[Panel] = []
        """The panels on screen now (one, or the grid's)."""
        self._gpu_wanted = False
        self._mounted = False
        self._stop = threading.Event()
        self._drawn: tuple[object, ...] | None = None
        self._last_draw = 0.0
        self._draw_cost = 0.0
        self._redraw_pending = False

    # ------------------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        """Header, run list, alerts, panel bar, the views (charts, scalars, settings), footer."""
        yield RunHeader(id="header")
        yield RunTable(id="runs")
        yield AlertBar(id="alerts")
        yield PanelBar(id="panelbar")
        with ContentSwitcher(initial="charts", id="views"):
            yield ChartGrid(id="charts")
            yield ScalarsView(id="scalars")
            yield ConfigView(id="config")
        yield Footer()

    def on_mount(self) -> None:
        """Lay out and start polling (which also keeps ages and statuses current)."""
        self._main = self.screen
        self._mounted = True
        self._main.query_one(RunHeader).show(None, str(self.config.logdir), self.tensorboard_url)
        self._fit(self.size.width, self.size.height)
        self._layout()
        self._main.query_one(RunTable).focus()
        self._poll_events()

    def on_resize(self, event: Resize) -> None:
        """The terminal changed size: grid or one panel, live."""
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.grid = charts.grid_shape(width, height, len(self.available))

    # ------------------------------------------------------------------------------ polling

    @work(thread=True, exclusive=True, name="poll")
    def _poll_events(self) -> None:
        """Read every file the board shows, every poll interval, and post what changed."""
        poll_forever(
            self._feed,
            self.nvml,
            self._stop,
            self.config.poll_interval,
            lambda update: self.post_message(Polled(update)),
            lambda: self._gpu_wanted,
        )

    def on_polled(self, message: Polled) -> None:
        """Take what the polling thread read and redraw what shows it."""
        update = message.update
        if isinstance(update, GpusRead):
            self._show_gpus(update)
            return
        for name, points in update.points.items():
            self.runs.setdefault(name, Run(name)).apply(points)
        self.summaries = update.summaries
        self.configs = update.configs
        self.unreadable = update.unreadable
        with self._closing_ok():
            self._refresh_view(data_changed=frozenset(update.points))
        self.loaded.set()

    def _show_gpus(self, update: GpusRead) -> None:
        """Show NVML's live view (or why there is none)."""
        self.gpu_view = update.view
        self.runs_by_pid = update.runs_by_pid
        with self._closing_ok():
            self._main.query_one(ChartGrid).show_gpus(self.gpu_view, self.runs_by_pid)

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

    # ------------------------------------------------------------------------------ drawing

    def _ordered(self) -> list[model.RunSummary]:
        """The summaries by run name."""
        return [self.summaries[n] for n in sorted(self.summaries)]

    def _refresh_view(self, data_changed: frozenset[str] | set[str]) -> None:
        ordered = self._ordered()
        table = self._main.query_one(RunTable)
        table.show(ordered, self._mark_colors())
        if self.selected is None and ordered:
            self.selected = ordered[table.cursor_row if table.cursor_row < len(ordered) else 0].name
        self._show_header()
        self._notify_new_alerts()
        if self._update_visible():
            self._layout()
        elif self.selected in data_changed or any(m in data_changed for m in self.marks):
            self._request_redraw()

    def _mark_colors(self) -> dict[str, str]:
        return {name: MARK_COLORS[i % len(MARK_COLORS)] for i, name in enumerate(self.marks)}

    def _update_visible(self) -> bool:
        """Recompute the panels for the selected and marked runs; True when they changed."""
        tags: set[str] = set()
        for name in {self.selected, *self.marks}:
            run = self.runs.get(name) if name else None
            if run is not None:
                tags.update(run.series)
        visible = panels_for(tags)
        if visible == self.available:
            return False
        self.available = visible
        self._fit(self.size.width, self.size.height)
        if not visible and tags and self.view == "charts":
            self.view = "scalars"  # another tool's run: its tags are the whole story
        return True

    def _layout(self) -> None:
        """Show the panels that fit (the current one first among equals), hide the others."""
        if not self._mounted:
            return  # a resize can arrive before the widgets exist; on_mount lays out
        keys = [p.key for p in self.available]
        if keys and self.panel not in keys:
            self.panel = keys[0]
            return  # watch_panel lays out again
        grid = self._main.query_one(ChartGrid)
        shape = (1, 1) if self.zoom else self.grid
        self.on_screen = grid.show_panels(self.available, self.panel, shape)
        self._gpu_wanted = self.view == "charts" and any(p.gpu_live for p in self.on_screen)
        if self._gpu_wanted:
            grid.show_gpus(self.gpu_view, self.runs_by_pid)
        self._show_panelbar()
        self._draw_charts(force=True)

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
        self._main.query_one(AlertBar).show(summary, others, self.unreadable)

    def _show_panelbar(self) -> None:
        self._main.query_one(PanelBar).show(
            self.available,
            self.panel if self.view == "charts" else self.view,
            self.smoothing,
            self._mark_colors(),
            self.grid if not self.zoom else (1, 1),
        )

    def _notify_new_alerts(self) -> None:
        for name, a in self._alerts.new(self._ordered(), infos=self.loaded.is_set()):
            if self.notify_alerts:
                warning = a.severity == model.WARNING
                self.notify(f"{name}: {a.message}", severity="error" if warning else "information")

    def _draw_charts(self, *, force: bool = False) -> None:
        key = (
            self.selected,
            self.marks,
            self.smoothing,
            self.view,
            self.tag,
            tuple(p.key for p in self.on_screen),
        )
        if not force and key == self._drawn:
            return
        self._drawn = key
        start = time.monotonic()
        try:
            if self.view == "charts":
                self._draw_panels()
            elif self.view == "scalars":
                self._draw_scalars()
            else:
                self._draw_config()
        finally:
            self._last_draw = time.monotonic()
            self._draw_cost = self._last_draw - start

    def _draw_panels(self) -> None:
        self._main.query_one(ChartGrid).draw(
            self.runs, self.on_screen, self.selected, self.marks, smoothing=self.smoothing
        )

    def _draw_scalars(self) -> None:
        run = self.runs.get(self.selected) if self.selected else None
        tags = self._main.query_one(ScalarsView).show_run(run)
        if self.tag not in tags:
            self.tag = tags[0] if tags else None
            return  # watch_tag draws the chart
        self._draw_tag()

    def _draw_tag(self) -> None:
        view = self._main.query_one(ScalarsView)
        view.show_tag(self.runs, self.tag, self.selected, self.marks, smoothing=self.smoothing)

    def _draw_config(self) -> None:
        names = [n for n in self.marks if n in self.summaries]
        if self.selected in self.summaries and self.selected not in names:
            names.insert(0, self.selected)  # the selected run beside the marked ones
        view = self._main.query_one(ConfigView)
        view.show([self.summaries[n] for n in names], [self.configs.get(n) for n in names])

    # ------------------------------------------------------------------------------ reactives

    def watch_selected(self) -> None:
        """A new run is selected: header, panels and charts follow."""
        self._show_header()
        if self._update_visible():
            self._layout()
        else:
            self._draw_charts()

    def watch_panel(self) -> None:
        """Switch the current panel."""
        self._layout()

    def watch_grid(self) -> None:
        """The terminal's size picked another grid."""
        self._layout()

    def watch_zoom(self) -> None:
        """One panel, or the grid again."""
        self._layout()

    def watch_view(self, view: str) -> None:
        """Charts, scalars or settings."""
        self._main.query_one(ContentSwitcher).current = view
        self._layout()
        if view == "scalars":
            self._main.query_one("#tags", DataTable).focus()
        elif view == "charts":
            self._main.query_one(RunTable).focus()

    def watch_tag(self) -> None:
        """Chart another tag in the scalars view."""
        if self.view == "scalars":
            self._draw_tag()

    def watch_smoothing(self) -> None:
        """Redraw with or without smoothing."""
        self._show_panelbar()
        self._draw_charts()

    def watch_marks(self) -> None:
        """Overlay the marked runs (and list their settings)."""
        self._main.query_one(RunTable).show(self._ordered(), self._mark_colors())
        if self._update_visible():
            self._layout()
        else:
            self._show_panelbar()
            self._draw_charts()

    # ------------------------------------------------------------------------------ actions

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The cursor moved in the run list or in the tag list."""
        if event.row_key.value is None:
            return
        if isinstance(event.data_table, RunTable):
            self.selected = event.row_key.value
        elif event.data_table.id == "tags":
            self.tag = event.row_key.value

    def on_input_changed(self, event: Input.Changed) -> None:
        """The tag filter changed: list the matching tags."""
        if event.input.id == "filter":
            self._draw_charts(force=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the filter: back to the tag list."""
        self._main.query_one("#tags", DataTable).focus()

    def action_move_run(self, delta: int) -> None:
        """Move the run-list cursor."""
        table = self._main.query_one(RunTable)
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + delta)))

    def action_move_panel(self, delta: int) -> None:
        """Next / previous panel."""
        keys = [p.key for p in self.available]
        if keys:
            i = keys.index(self.panel) if self.panel in keys else 0
            self.panel = keys[(i + delta) % len(keys)]
        self.view = "charts"

    def action_panel_number(self, number: int) -> None:
        """Show panel ``number`` of the panel bar."""
        if 1 <= number <= len(self.available):
            self.panel = self.available[number - 1].key
            self.view = "charts"

    def action_mark(self) -> None:
        """Mark the selected run for comparison, or unmark it."""
        name = self.selected
        if name is None:
            return
        self.marks = (
            tuple(m for m in self.marks if m != name) if name in self.marks else (*self.marks, name)
        )

    def action_toggle_smoothing(self) -> None:
        """Smoothing on / off."""
        self.smoothing = not self.smoothing

    def action_toggle_zoom(self) -> None:
        """In the grid: the current panel alone, or the grid again."""
        self.zoom = not self.zoom

    def action_view(self, view: str) -> None:
        """Show a view (the same key again goes back to the charts)."""
        self.view = "charts" if view == self.view else view

    def action_filter(self) -> None:
        """Type a tag filter."""
        self.view = "scalars"
        self._main.query_one("#filter", Input).focus()

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

        return print_once(
            Path(config.logdir), as_json_output=config.json, models_dir=config.models_dir
        )
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
