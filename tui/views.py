"""The board's three views: the chart grid, every scalar tag of a run, the runs' settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Container, Vertical
from textual.widgets import DataTable, Input, Static

from tui import charts, model, settings
from tui.charts import SPARK_WIDTH, TagRow
from tui.gpu import GpuView, format_gpus
from tui.panels import PANELS, Panel, panel_by_key
from tui.points import Run
from tui.widgets import MetricChart


class ChartGrid(Container):
    """Every panel of the table, of which the ones that fit are shown (one, or a grid)."""

    def compose(self) -> ComposeResult:
        """One chart per panel (and NVML's live view under the memory chart)."""
        for p in PANELS:
            with Vertical(id=p.key, classes="panel"):
                yield MetricChart(p.chart_title, id=f"{p.key}-chart")
                if p.gpu_live:
                    yield Static("", id="gpu-live")

    def show_panels(
        self, available: list[Panel], current: str, grid: tuple[int, int]
    ) -> list[Panel]:
        """Show ``current`` alone (a 1x1 grid) or the first panels that fill the grid (with
        ``current`` among them); returns the panels on screen."""
        cols, rows = grid
        if cols * rows <= 1:
            shown = [p for p in available if p.key == current]
        else:
            shown = available[: cols * rows]
            if any(p.key == current for p in available) and all(p.key != current for p in shown):
                shown[-1] = panel_by_key(current)
        self.set_class(cols * rows > 1, "-grid")
        self.styles.grid_size_columns = cols
        self.styles.grid_size_rows = rows
        for p in PANELS:
            widget = self.query_one(f"#{p.key}")
            widget.display = p in shown
            widget.set_class(p.key == current and len(shown) > 1, "-current")
        return shown

    def draw(
        self,
        runs: Mapping[str, Run],
        panels: list[Panel],
        selected: str | None,
        marks: tuple[str, ...],
        *,
        smoothing: bool,
    ) -> None:
        """Draw ``panels`` for the selected run with the marked runs overlaid."""
        shown = charts.shown_runs(runs, selected, marks)
        for panel in panels:
            lines, notes = charts.panel_lines(panel, shown, smoothing=smoothing)
            self.query_one(f"#{panel.key}-chart", MetricChart).set_lines(lines, "; ".join(notes))

    def show_gpus(self, view: GpuView, runs_by_pid: dict[int, str]) -> None:
        """NVML's live view under the memory chart (or why there is none)."""
        live = self.query_one("#gpu-live", Static)
        if view.reason or view.gpus:
            live.update(format_gpus(view, runs_by_pid))
        else:
            live.update("reading NVML...")


class ScalarsView(Vertical):
    """Every scalar tag of the selected run, filtered by a regex, with a chart of one tag."""

    def compose(self) -> ComposeResult:
        """Filter, tag table, chart."""
        yield Input(placeholder="filter tags (regular expression, as TensorBoard's)", id="filter")
        yield DataTable(id="tags", cursor_type="row", zebra_stripes=False)
        yield MetricChart("", id="tag-chart")

    def on_mount(self) -> None:
        """Create the columns."""
        table = self.query_one("#tags", DataTable)
        for key, label, width in (
            ("tag", "tag", None),
            ("value", "latest", 10),
            ("step", "step", 9),
            ("spark", "recent", SPARK_WIDTH),
        ):
            right = key in ("value", "step")
            table.add_column(
                Text(label, justify="right" if right else "left"), key=key, width=width
            )

    def show_run(self, run: Run | None) -> list[str]:
        """List the tags of ``run`` that match the filter; returns them, in order."""
        return self.show(charts.tag_rows(run), self.query_one("#filter", Input).value)

    def show_tag(
        self,
        runs: Mapping[str, Run],
        tag: str | None,
        selected: str | None,
        marks: tuple[str, ...],
        *,
        smoothing: bool,
    ) -> None:
        """Chart ``tag`` of the selected run and of the marked runs."""
        lines = []
        if tag is not None:
            lines = charts.tag_lines(
                tag, charts.shown_runs(runs, selected, marks), smoothing=smoothing
            )
        chart = self.query_one("#tag-chart", MetricChart)
        chart.title = tag or "no tag matches the filter"
        chart.set_lines(lines)

    def show(self, rows: list[TagRow], pattern: str) -> list[str]:
        """Show the rows whose tag matches ``pattern``; returns the tags shown, in order."""
        table = self.query_one("#tags", DataTable)
        regex = charts.tag_filter(pattern)
        box = self.query_one("#filter", Input)
        box.border_subtitle = "invalid regular expression" if regex is None else ""
        keep = [r for r in rows if regex is not None and regex.search(r.tag)]
        wanted = [r.tag for r in keep]
        if [str(k.value) for k in table.rows] != wanted:
            table.clear()
            for r in keep:
                table.add_row(*self._cells(r), key=r.tag)
        else:
            for r in keep:
                for key, cell in zip(
                    ("tag", "value", "step", "spark"), self._cells(r), strict=True
                ):
                    if table.get_cell(r.tag, key) != cell:
                        table.update_cell(r.tag, key, cell)
        return wanted

    @staticmethod
    def _cells(r: TagRow) -> tuple[Text, Text, Text, Text]:
        return (
            Text(r.tag),
            Text(model.format_value(r.value), justify="right"),
            Text(f"{r.step:,}", justify="right"),
            Text(r.spark, style="cyan"),
        )


class ConfigView(Vertical):
    """The marked runs' settings side by side, the differing keys first, and their best LFW."""

    def compose(self) -> ComposeResult:
        """Summary line and the settings table."""
        yield Static("", id="config-summary")
        yield DataTable(id="settings", cursor_type="row", zebra_stripes=False)

    def show(
        self,
        summaries: list[model.RunSummary],
        configs: list[tuple[dict[str, Any], str] | None],
    ) -> None:
        """Render the runs' settings (``configs`` in the order of ``summaries``, as the polling
        thread found them)."""
        shown = (
            [(s.name, s.best_accuracy, s.best_accuracy_step) for s in summaries],
            [c[0] if c else None for c in configs],
        )
        if shown == getattr(self, "_shown", None):
            return  # new points arrive every poll; the table is rebuilt only when it changes
        self._shown = shown
        table = self.query_one("#settings", DataTable)
        table.clear(columns=True)
        table.add_column("setting", key="setting")
        for s in summaries:
            table.add_column(s.shown, key=s.name)
        rows = settings.compare_settings([c[0] if c else None for c in configs])
        for row in rows:
            style = "bold" if row.differs else "dim"
            cells = [Text(row.key, style=style)]
            cells += [Text("-" if v is None else _setting(v), style=style) for v in row.values]
            table.add_row(*cells)
        self.query_one("#config-summary", Static).update(_summary(summaries, configs, rows))


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_setting(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _summary(
    summaries: list[model.RunSummary],
    configs: list[tuple[dict[str, Any], str] | None],
    rows: list[settings.SettingRow],
) -> Text:
    text = Text()
    if len(summaries) < 2:
        text.append("mark runs with space to compare their settings; ", style="dim")
    differing = sum(r.differs for r in rows)
    text.append(f"{differing} of {len(rows)} settings differ", style="bold" if differing else "")
    best = [
        f"{s.shown} {s.best_accuracy:.4f}@{s.best_accuracy_step:,}"
        for s in summaries
        if s.best_accuracy is not None and s.best_accuracy_step is not None
    ]
    if best:
        text.append("  best LFW: " + ", ".join(best))
    spread = settings.accuracy_spread(summaries)
    if spread is not None:
        text.append(f"  apart by {spread:.4f}", style="yellow")
    missing = [s.name for s, c in zip(summaries, configs, strict=True) if c is None]
    if missing:
        text.append(f"  no config.toml for {', '.join(missing)}", style="dim")
    return text
