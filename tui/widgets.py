"""Widgets of the board: run list, header, alert line, panel bar, charts, help screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from facenet_cli import events as ev
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from tui import model
from tui.panels import Panel, is_facenet_tag, rich_color

STATUS_STYLE = {
    "live": "green",
    "stalled": "yellow",
    "finished": "blue",
    "failed": "red",
    "waiting": "dim",
}


@dataclass(frozen=True)
class Line:
    """One line of a chart: points already copied out of the reader."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str = "cyan"
    yside: str = "left"
    marker: str = "braille"


class RunTable(DataTable[Text | str]):
    """The run list: name, status, last step, time since the last event, best LFW accuracy."""

    # Fixed widths (the run name takes what it needs): a changing age or step then repaints one
    # cell instead of re-laying out the screen, which would redraw the charts every second.
    COLUMNS = (
        ("mark", " ", 1),
        ("run", "run", None),
        ("status", "status", 8),
        ("step", "step", 8),
        ("age", "age", 5),
        ("eta", "ETA", 6),
        ("best", "best LFW", 8),
    )

    def __init__(self, **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        """Create the columns."""
        for key, label, width in self.COLUMNS:
            right = key in ("step", "age", "eta", "best")
            self.add_column(Text(label, justify="right" if right else "left"), key=key, width=width)

    def show(self, summaries: list[model.RunSummary], marks: dict[str, str]) -> None:
        """Add new runs and update the cells that changed (``marks``: run -> its colour)."""
        for s in summaries:
            mark = marks.get(s.name)
            cells = {
                "mark": Text("●", style=rich_color(mark)) if mark else Text(" "),
                "run": Text(s.shown, style="bold red" if s.warnings else ""),
                "status": Text(s.status, style=STATUS_STYLE.get(s.status, "")),
                "step": Text("-" if s.last_step is None else f"{s.last_step:,}", justify="right"),
                "age": Text(model.format_age(s.age_s), justify="right"),
                "eta": Text(model.format_eta(s.eta_s), justify="right"),
                "best": Text(model.format_value(s.best_accuracy), justify="right"),
            }
            if s.name not in self.rows:
                self.add_row(*(cells[k] for k, _, _ in self.COLUMNS), key=s.name)
                continue
            for key, value in cells.items():
                if self.get_cell(s.name, key) != value:
                    self.update_cell(s.name, key, value, update_width=key == "run")


class _Line(Static):
    """A Static that repaints only when its text really changes (the board idles a lot)."""

    def set_text(self, text: Text) -> None:
        """Show ``text`` unless it is already shown."""
        if text != getattr(self, "_shown", None):
            self._shown = text
            self.update(text)


class RunHeader(_Line):
    """Latest values of the selected run and its ETA."""

    def show(self, s: model.RunSummary | None, waiting_for: str, tensorboard_url: str) -> None:
        """Render the two header lines."""
        tb = f"  TensorBoard {tensorboard_url}" if tensorboard_url else ""
        if s is None:
            self.set_text(Text(f"waiting for event files in {waiting_for}{tb}", style="dim"))
            return
        f = model.format_value
        line1 = Text()
        line1.append(s.shown, style="bold")
        line1.append(f"  {s.status}", style=STATUS_STYLE.get(s.status, ""))
        step = "-" if s.last_step is None else f"{s.last_step:,}"
        if s.total_steps:
            step += f"/{s.total_steps:,}"
        line1.append(f"  step {step}  ETA {model.format_eta(s.eta_s)}")
        foreign = bool(s.latest) and not any(is_facenet_tag(t) for t in s.latest)
        if not foreign:
            line1.append(f"  img/s {f(s.latest.get(ev.IMAGES_PER_SEC))}")
        if s.reason:
            line1.append(f"  {s.reason}", style="red" if s.status == "failed" else "dim")
        line1.append(tb, style="dim")
        best = ""
        if s.best_accuracy is not None:
            best = f" (best {s.best_accuracy:.4g}@{s.best_accuracy_step:,})"
        if foreign:
            # Another writer's run (Keras, tensorboardX): its own tags, the scalars view has all.
            line2 = Text("  ".join(f"{t} {f(v)}" for t, v in sorted(s.latest.items())[:6]))
        else:
            middle = (
                f"acc {f(s.latest.get(ev.CLS_ACCURACY))}"
                if ev.CLS_ACCURACY in s.latest
                else f"active {f(s.latest.get(ev.TRIPLETS_ACTIVE_FRACTION))}"
            )
            line2 = Text(
                f"loss {f(s.latest.get(ev.LOSS))}  lr {f(s.latest.get(ev.LEARNING_RATE))}  "
                f"{middle}  LFW {f(s.latest.get(ev.LFW_ACCURACY))}{best}  "
                f"VAL {f(s.latest.get(ev.LFW_VAL_RATE))}"
            )
        if s.corrupt_records:
            line2.append(f"  {s.corrupt_records} corrupt skipped", style="yellow")
        self.set_text(Text("\n").join([line1, line2]))


class AlertBar(_Line):
    """One line of alerts for the selected run and a count over the others."""

    def show(
        self,
        selected: model.RunSummary | None,
        others_with_warnings: int,
        unreadable: dict[Path, str] | None = None,
    ) -> None:
        """Show the selected run's alerts, other runs' count and the unreadable entries."""
        parts: list[Text] = []
        if selected is not None:
            for a in selected.alerts:
                style = "bold red" if a.severity == model.WARNING else "bold green"
                icon = "!" if a.severity == model.WARNING else "*"
                parts.append(Text(f"{icon} {a.message}", style=style))
        if others_with_warnings:
            parts.append(Text(f"{others_with_warnings} other run(s) with alerts", style="yellow"))
        if unreadable:
            path, why = sorted(unreadable.items())[0]
            more = f" (+{len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
            parts.append(Text(f"unreadable: {path.name}: {why}{more}", style="yellow"))
        self.set_class(bool(parts), "-active")
        self.set_text(Text("  ").join(parts))


class PanelBar(_Line):
    """The panels (number keys), the views, smoothing, the grid and the marked runs."""

    def show(
        self,
        panels: Sequence[Panel],
        current: str,
        smoothing: bool,
        marks: dict[str, str],
        grid: tuple[int, int],
    ) -> None:
        """Render the bar (``current``: a panel key, or ``scalars`` / ``config``)."""
        text = Text()
        for i, p in enumerate(panels, 1):
            style = "reverse bold" if p.key == current else "dim"
            text.append(f"{i} {p.title}", style=style)
            text.append(" ")
        for key, title in (("scalars", "t Scalars"), ("config", "v Settings")):
            text.append(title, style="reverse bold" if key == current else "dim")
            text.append(" ")
        text.append(" smooth" if smoothing else " raw", style="dim")
        if grid != (1, 1):
            text.append(f" grid {grid[0]}x{grid[1]}", style="dim")
        for name, color in marks.items():
            text.append(f"  ● {name}", style=rich_color(color))
        self.set_text(text)


class MetricChart(PlotextPlot):
    """A line chart with axes; lines are decimated (min/max) to the chart's width."""

    def __init__(self, title: str, *, ylabel_right: str = "", **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title
        self.ylabel_right = ylabel_right
        self.lines: list[Line] = []
        self.note = ""

    def set_lines(self, lines: list[Line], note: str = "") -> None:
        """Replace the plotted lines and redraw."""
        self.lines = lines
        self.note = note
        self.replot()

    def on_resize(self) -> None:
        """Decimation depends on the width: redo it."""
        self.replot()

    def replot(self) -> None:
        """Draw the lines at the current size."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        width = max(10, self.size.width - 12)
        drawn = 0
        for line in self.lines:
            x, y = model.minmax_decimate(line.x, line.y, width)
            if len(x) == 0:
                continue
            plt.plot(
                x.tolist(),
                y.tolist(),
                label=line.label,
                color=line.color,
                yside=line.yside,
                marker=line.marker,
            )
            drawn += 1
        title = self.title + (f"  {self.note}" if self.note else "")
        if not drawn:
            title += "  (no data yet)"
        plt.title(title)
        plt.xlabel("step")
        self.refresh()


class HelpScreen(ModalScreen[None]):
    """The keys."""

    BINDINGS = [Binding("escape,q,question_mark", "app.pop_screen", "Close")]

    TEXT = """[b]facenet board[/b]

  j / k, up / down      previous / next run
  1 .. 7, left / right  switch panel (numbers as in the panel bar)
  space (or c)          mark / unmark the run: marked runs are overlaid on every chart
  s                     toggle smoothing (loss, images/s, the scalars chart)
  z                     in the grid (120x36 and up): the current panel alone, or the grid
  t                     scalars: every tag of the run, its latest value and recent shape
  /                     filter the tags (a regular expression, as TensorBoard's)
  v                     settings: the marked runs' config.toml side by side, differences first
  escape                back to the charts
  ?                     this help
  q                     quit

Status: live, stalled (no event for a while), finished / failed (train's marker files).
ETA from the recent step rate and the planned steps (config.toml: max_steps or epochs x size).
Charts keep every point (up to a large cap per tag) and draw min/max per column."""

    def compose(self) -> ComposeResult:
        """The help text in a box."""
        with Vertical(id="help"):
            yield Static(self.TEXT)
