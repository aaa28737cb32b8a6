"""The panel table, the grid shape, the scalars view's maths and the settings comparison."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from board_eventlog import EventLog, event_file

from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from facenet_cli.events.reader import tag_prefix
from tui import charts, settings
from tui.app import BoardApp
from tui.model import RunSummary
from tui.panels import PANELS, panels_for
from tui.widgets import MetricChart, PanelBar


def _keys(tags: set[str]) -> list[str]:
    return [p.key for p in panels_for(tags)]


FACENET = ["loss", "triplets", "lfw", "memory", "speed", "lr"]


def test_panels_for_each_kind_of_run() -> None:
    assert _keys(set()) == FACENET  # a facenet run before its first tags
    assert _keys({ev.LOSS, ev.TRIPLETS_SELECTED}) == FACENET
    classifier = {ev.LOSS, *ev.CLASSIFIER_TAGS}
    assert _keys(classifier) == ["loss", "classifier", "lfw", "memory", "speed", "lr"]
    both = classifier | {ev.TRIPLETS_ACTIVE_FRACTION}  # a triplet run marked beside it
    assert _keys(both) == ["loss", "triplets", "classifier", "lfw", "memory", "speed", "lr"]
    assert _keys({"train/epoch_loss", "lr"}) == []  # another tool's run: the scalars view
    assert _keys({"learning_rate", "epoch_loss"}) == FACENET  # one of facenet's tags is enough
    assert _keys({"gpu/memory_peak_mb/GPU:1"}) == FACENET
    assert len({p.key for p in PANELS}) == len(PANELS)


@pytest.mark.parametrize(
    ("size", "panels", "shape"),
    [
        ((80, 24), 6, (1, 1)),
        ((119, 50), 6, (1, 1)),  # too narrow
        ((200, 35), 6, (1, 1)),  # too low
        ((120, 36), 6, (2, 2)),
        ((200, 50), 6, (3, 2)),
        ((200, 50), 7, (3, 3)),
        ((200, 50), 2, (2, 1)),
        ((300, 80), 6, (5, 2)),
        ((200, 50), 1, (1, 1)),
    ],
)
def test_grid_shape(size: tuple[int, int], panels: int, shape: tuple[int, int]) -> None:
    assert charts.grid_shape(*size, panels) == shape


def test_sparkline_and_tag_filter() -> None:
    assert charts.sparkline(np.arange(8.0), 8) == "▁▂▃▄▅▆▇█"
    assert charts.sparkline(np.arange(100.0), 4) == "▁▃▆█"  # bucket means
    assert charts.sparkline(np.array([1.0, np.nan, 3.0]), 8) == "▁ █"
    assert charts.sparkline(np.ones(5), 3) == "▁▁▁"
    assert charts.sparkline(np.empty(0), 8) == ""
    regex = charts.tag_filter("^LFW/")
    assert regex is not None and regex.search("lfw/accuracy") and not regex.search("x/lfw/a")
    assert charts.tag_filter("[") is None


def test_settings_side_by_side_differences_first() -> None:
    a = {"model_def": "small", "learning_rate": 0.1, "optimizer": {"name": "ADAM", "eps": 1.0}}
    b = {"model_def": "small", "learning_rate": 0.05, "optimizer": {"name": "ADAM"}, "loss": "x"}
    rows = settings.compare_settings([a, b, None])
    assert [(r.key, r.differs) for r in rows] == [
        ("learning_rate", True),
        ("loss", True),
        ("optimizer.eps", True),
        ("model_def", False),
        ("optimizer.name", False),
    ]
    assert rows[0].values == (0.1, 0.05, None)  # the run without a config shows nothing
    assert settings.compare_settings([a])[0].differs is False


def _summary(name: str, best: float | None) -> RunSummary:
    return RunSummary(name, "live", 1, 1.0, best, 1, {}, (), None, None, None, 0)


def test_accuracy_spread() -> None:
    assert settings.accuracy_spread([_summary("a", 0.91), _summary("b", 0.885)]) == (
        pytest.approx(0.025)
    )
    assert settings.accuracy_spread([_summary("a", 0.91), _summary("b", None)]) is None


def test_tag_prefix() -> None:
    run = Path("/logs/r")
    assert tag_prefix(run, run / "events.out.tfevents.1") == ""
    assert tag_prefix(run, run / "train" / "events.out.tfevents.1") == "train/"
    assert tag_prefix(run, run / "acc" / "val" / "events.out.tfevents.1") == "acc/val/"


async def test_a_classifier_run_shows_its_panel_in_place_of_triplets(tmp_path: Path) -> None:
    log = EventLog(event_file(tmp_path / "softmax"))
    now = time.time()
    for step in range(10):
        wall = now - 10 + step
        log.scalar(ev.LOSS, 2.0 - step / 10, step, wall_time=wall)
        log.scalar(ev.CLS_CROSS_ENTROPY, 1.5 - step / 10, step, wall_time=wall)
        log.scalar(ev.CLS_ACCURACY, step / 10, step, wall_time=wall)
        log.scalar(ev.VAL_ACCURACY, step / 12, step, wall_time=wall)
    app = BoardApp(BoardConfig(logdir=tmp_path, poll_interval=0.05), notify_alerts=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while not app.loaded.is_set():
            await pilot.pause(0.05)
        await pilot.press("2")
        assert app.panel == "classifier"
        assert "2 Classifier 3 LFW" in str(app.query_one(PanelBar).content)
        assert "Triplets" not in str(app.query_one(PanelBar).content)
        chart = app.query_one("#classifier-chart", MetricChart)
        labels = {line.label: line.yside for line in chart.lines}
        assert labels == {
            "cross-entropy (raw)": "left",
            "cross-entropy": "left",
            "accuracy": "right",
            "validation accuracy": "right",
        }
