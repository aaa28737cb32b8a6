"""The board's panels, declared once: this table drives the panel bar, the layout and the drawing.

A panel is a chart of one or more traces; a trace is a group of tags drawn the same way (one
y axis, smoothed or not, overlaid for the marked runs or not). Adding a panel is adding a row
here. The order is the priority in the wide grid: the first panels that fit are shown.

Which panels a run gets: facenet's panels for a run holding any of facenet's tags (or none yet),
each other panel (the classifier's) when its tags are there, in place of the panel it
``replaces`` when that one's own tags are absent; a run written by another tool (Keras,
tensorboardX) gets only the panels whose tags it has, and the scalars view lists everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from facenet_cli import events as ev

COLORS = ("cyan", "green", "yellow", "orange", "red", "blue", "white")
MARK_COLORS = ("magenta", "orange", "red+", "blue+", "green+", "yellow+", "gray+")
"""Colours of the marked runs' lines (and their dots in the run list), in marking order."""
_RICH_NAMES = {"orange": "dark_orange", "orange+": "orange1", "gray": "grey50", "gray+": "grey70"}


def rich_color(plotext_color: str) -> str:
    """A plotext colour name (``red+`` is the bright one) as a Rich colour."""
    if plotext_color in _RICH_NAMES:
        return _RICH_NAMES[plotext_color]
    return "bright_" + plotext_color[:-1] if plotext_color.endswith("+") else plotext_color


class HasSeries(Protocol):
    """A run as far as the panels care: its tags (the reader's runs and the UI's copies)."""

    @property
    def series(self) -> Mapping[str, object]:
        """Tag -> its points."""
        ...


@dataclass(frozen=True)
class Trace:
    """Tags drawn alike on one panel.

    Attributes:
        tags: ``(tag, label)`` pairs, drawn in ``colors`` order.
        families: ``(prefix, label)``: every tag ``<prefix>/<device>`` is drawn, labelled
            ``"<device> <label>"`` (per-GPU memory); when a run has any, they replace ``tags``.
        smooth: Draw TensorBoard's smoothing over the raw points (when smoothing is on).
        yside: ``left`` or ``right`` axis.
        colors: Colours of the tags in order.
        compare: Overlay the comparison run's first tag of this trace.
    """

    tags: tuple[tuple[str, str], ...] = ()
    families: tuple[tuple[str, str], ...] = ()
    smooth: bool = False
    yside: str = "left"
    colors: tuple[str, ...] = COLORS
    compare: bool = True

    def resolve(self, run: HasSeries | None) -> list[tuple[str, str]]:
        """The ``(tag, label)`` pairs to draw for ``run``."""
        if run is None:
            return []
        found = [
            (tag, f"{tag[len(prefix) + 1 :]} {label}")
            for prefix, label in self.families
            for tag in sorted(run.series)
            if tag.startswith(prefix + "/")
        ]
        return found or list(self.tags)

    def matches(self, tags: set[str]) -> bool:
        """Whether any of this trace's tags (or a family member) is in ``tags``."""
        return any(t in tags for t, _ in self.tags) or any(
            tag.startswith(prefix + "/") for prefix, _ in self.families for tag in tags
        )


@dataclass(frozen=True)
class Panel:
    """One chart of the board.

    Attributes:
        key: Widget id and action argument.
        title: Name in the panel bar.
        chart_title: Title drawn above the chart.
        traces: What it draws.
        gpu_live: Show NVML's live GPU view under the chart.
        facenet: One of the panels every facenet run shows (even before its tags arrive).
        replaces: Key of the panel this one stands in for when it applies.
    """

    key: str
    title: str
    chart_title: str
    traces: tuple[Trace, ...]
    gpu_live: bool = False
    facenet: bool = True
    replaces: str | None = None

    def has_data(self, tags: set[str]) -> bool:
        """Whether ``tags`` hold anything this panel draws."""
        return any(trace.matches(tags) for trace in self.traces)


PANELS: tuple[Panel, ...] = (
    Panel("loss", "Loss", "loss", (Trace(((ev.LOSS, "loss"),), smooth=True),)),
    Panel(
        "triplets",
        "Triplets",
        "triplets: active fraction (left), selected (right)",
        (
            Trace(((ev.TRIPLETS_ACTIVE_FRACTION, "active fraction"),)),
            Trace(
                ((ev.TRIPLETS_SELECTED, "selected"),),
                yside="right",
                colors=("yellow",),
                compare=False,
            ),
        ),
    ),
    Panel(
        "classifier",
        "Classifier",
        "classifier: cross-entropy and validation loss (left), accuracy (right)",
        (
            Trace(
                ((ev.CLS_CROSS_ENTROPY, "cross-entropy"), (ev.VAL_LOSS, "validation loss")),
                smooth=True,
            ),
            Trace(
                ((ev.CLS_ACCURACY, "accuracy"), (ev.VAL_ACCURACY, "validation accuracy")),
                yside="right",
                colors=("yellow", "orange"),
                compare=False,
            ),
        ),
        facenet=False,
        replaces="triplets",
    ),
    Panel(
        "lfw",
        "LFW",
        "LFW accuracy and VAL",
        (Trace(((ev.LFW_ACCURACY, "accuracy"), (ev.LFW_VAL_RATE, "VAL"))),),
    ),
    Panel(
        "benchmarks",
        "Benchmarks",
        "benchmark accuracy (validate --benchmark, per benchmark)",
        (Trace(families=((ev.BENCH_ACCURACY, "accuracy"),)),),
        facenet=False,
    ),
    Panel(
        "memory",
        "Memory",
        "memory MB (TensorFlow current / peak)",
        (
            Trace(
                ((ev.HOST_RSS_MB, "host RSS"),),
                families=((ev.GPU_MEMORY_CURRENT_MB, "current"), (ev.GPU_MEMORY_PEAK_MB, "peak")),
                compare=False,
            ),
        ),
        gpu_live=True,
    ),
    Panel(
        "speed",
        "Speed",
        "images per second",
        (Trace(((ev.IMAGES_PER_SEC, "images/s"),), smooth=True),),
    ),
    Panel("lr", "LR", "learning rate", (Trace(((ev.LEARNING_RATE, "learning rate"),)),)),
)

FACENET_TAGS = frozenset((*ev.TRAIN_TAGS, *ev.LFW_TAGS, *ev.CLASSIFIER_TAGS, ev.HOST_RSS_MB))
FACENET_FAMILIES = (
    ev.GPU_MEMORY_CURRENT_MB + "/",
    ev.GPU_MEMORY_PEAK_MB + "/",
    *(base + "/" for base in ev.BENCHMARK_FAMILIES),
)


def is_facenet_tag(tag: str) -> bool:
    """Whether facenet's trainer writes ``tag``."""
    return tag in FACENET_TAGS or tag.startswith(FACENET_FAMILIES)


def panels_for(tags: set[str]) -> list[Panel]:
    """The panels for runs holding ``tags`` (the selected run's and the marked runs' together)."""
    facenet = not tags or any(is_facenet_tag(t) for t in tags)
    shown = [p for p in PANELS if p.has_data(tags) or (facenet and p.facenet)]
    stand_ins = {p.replaces for p in shown if p.replaces}
    return [p for p in shown if p.key not in stand_ins or p.has_data(tags)]


_BY_KEY = {p.key: p for p in PANELS}


def panel_by_key(key: str) -> Panel:
    """The panel called ``key``."""
    return _BY_KEY[key]
