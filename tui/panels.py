"""The board's panels, declared once: this table drives the panel bar, the layout and the drawing.

A panel is a chart of one or more traces; a trace is a group of tags drawn the same way (one
y axis, smoothed or not, overlaid for the comparison run or not). Adding a panel is adding a
row here.
"""

from __future__ import annotations

from dataclasses import dataclass

from facenet_cli import events as ev

COLORS = ("cyan", "green", "yellow", "orange", "red", "blue", "white")
COMPARE_COLOR = "magenta"


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

    def resolve(self, run: ev.RunState | None) -> list[tuple[str, str]]:
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


@dataclass(frozen=True)
class Panel:
    """One chart of the board.

    Attributes:
        key: Widget id and action argument.
        title: Name in the panel bar.
        chart_title: Title drawn above the chart.
        traces: What it draws.
        gpu_live: Show NVML's live GPU view under the chart.
    """

    key: str
    title: str
    chart_title: str
    traces: tuple[Trace, ...]
    gpu_live: bool = False


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
    Panel("lr", "LR", "learning rate", (Trace(((ev.LEARNING_RATE, "learning rate"),)),)),
    Panel(
        "lfw",
        "LFW",
        "LFW accuracy and VAL",
        (Trace(((ev.LFW_ACCURACY, "accuracy"), (ev.LFW_VAL_RATE, "VAL"))),),
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
)

_BY_KEY = {p.key: p for p in PANELS}


def panel_by_key(key: str) -> Panel:
    """The panel called ``key``."""
    return _BY_KEY[key]
