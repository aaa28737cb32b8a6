"""The board's two table views: every scalar tag of a run, and the marked runs' settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Input, Static

from tui import model
from tui.widgets import MetricChart

SPARK_WIDTH = 16


@dataclass(frozen=True)
class TagRow:
    """One tag of the scalars view: its newest point and a sparkline of its recent values."""

    tag: str
    step: int
    value: float
    spark: str


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

    def show(self, rows: list[TagRow], pattern: str) -> list[str]:
        """Show the rows whose tag matches ``pattern``; returns the tags shown, in order."""
        table = self.query_one("#tags", DataTable)
        regex = model.tag_filter(pattern)
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
        """Render the runs' settings (``configs`` in the order of ``summaries``)."""
        table = self.query_one("#settings", DataTable)
        table.clear(columns=True)
        table.add_column("setting", key="setting")
        for s in summaries:
            table.add_column(s.name, key=s.name)
        rows = model.compare_settings([c[0] if c else None for c in configs])
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
    rows: list[model.SettingRow],
) -> Text:
    text = Text()
    if len(summaries) < 2:
        text.append("mark runs with space to compare their settings; ", style="dim")
    differing = sum(r.differs for r in rows)
    text.append(f"{differing} of {len(rows)} settings differ", style="bold" if differing else "")
    best = [
        f"{s.name} {s.best_accuracy:.4f}@{s.best_accuracy_step:,}"
        for s in summaries
        if s.best_accuracy is not None and s.best_accuracy_step is not None
    ]
    if best:
        text.append("  best LFW: " + ", ".join(best))
    spread = model.accuracy_spread(summaries)
    if spread is not None:
        text.append(f"  apart by {spread:.4f}", style="yellow")
    missing = [s.name for s, c in zip(summaries, configs, strict=True) if c is None]
    if missing:
        text.append(f"  no config.toml for {', '.join(missing)}", style="dim")
    return text
