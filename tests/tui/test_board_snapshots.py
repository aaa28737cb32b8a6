"""Layout snapshots of the board at 80x24 and 200x50 (pytest-textual-snapshot; --snapshot-update
to accept).

The data, the clock and the files' modification times are fixed, so ages, statuses and charts
render the same on every machine.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from board_eventlog import EventLog, event_file
from textual.pilot import Pilot

from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from tui.app import BoardApp
from tui.gpu import GpuView, Nvml

NOW = 1.9e9
SIZE = (80, 24)
WIDE = (200, 50)


class _NoGpu(Nvml):
    def read(self) -> GpuView:
        return GpuView((), "no GPU: NVML unavailable")


def _run(
    logs: Path,
    name: str,
    n: int,
    *,
    scale: float = 1.0,
    age: float = 5.0,
    nan_at: int | None = None,
    marker: str | None = None,
) -> None:
    path = event_file(logs / name)
    log = EventLog(path)
    end = NOW - age
    for i in range(n):
        step = 10 * i
        wall = end - (n - 1 - i) * 2.0
        loss = scale * (0.05 + 0.5 * math.exp(-i / 40) + 0.03 * math.sin(i * 1.7))
        if nan_at is not None and i >= nan_at:
            loss = math.nan
        log.scalar(ev.LOSS, loss, step, wall_time=wall)
        log.scalar(ev.LEARNING_RATE, 0.1 if i < n // 2 else 0.01, step, wall_time=wall)
        log.scalar(ev.TRIPLETS_ACTIVE_FRACTION, 0.6 * math.exp(-i / 60), step, wall_time=wall)
        log.scalar(ev.TRIPLETS_SELECTED, 400 + 50 * math.cos(i / 5), step, wall_time=wall)
        log.scalar(ev.IMAGES_PER_SEC, 250 + 10 * math.sin(i / 3), step, wall_time=wall)
        if i % 25 == 24:
            log.scalar(ev.LFW_ACCURACY, 0.7 + 0.2 * (1 - math.exp(-i / 80)), step, wall_time=wall)
            log.scalar(ev.LFW_VAL_RATE, 0.2 + 0.4 * (1 - math.exp(-i / 80)), step, wall_time=wall)
    log.scalar(ev.TOTAL_STEPS, 5000.0, 0, wall_time=end - n * 2.0)
    log.close()
    os.utime(path, (end, end))
    if marker == ev.FAILED_MARKER:
        (logs / name / marker).write_text("stopped: loss became NaN\n")
    elif marker:
        (logs / name / marker).write_text("")


def _logs(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    _run(logs, "2026-11-28-inception", 150)
    _run(logs, "2026-11-27-small", 100, scale=1.4, age=7200, marker=ev.FINISHED_MARKER)
    _run(logs, "2026-11-28-diverged", 60, nan_at=55, age=30, marker=ev.FAILED_MARKER)
    # train keeps each run's settings beside its checkpoints: <models>/<run>/config.toml
    for name, model, lr in (
        ("2026-11-28-inception", "inception_resnet_v1", 0.05),
        ("2026-11-27-small", "small", 0.1),
    ):
        folder = tmp_path / "models" / name
        folder.mkdir(parents=True)
        (folder / "config.toml").write_text(
            f'model_def = "{model}"\nlearning_rate = {lr}\nbatch_size = 90\n'
            f'max_nrof_epochs = 5\nepoch_size = 1000\n\n[optimizer]\nname = "ADAM"\n'
        )
    return logs


def _app(logs: Path) -> BoardApp:
    return BoardApp(
        BoardConfig(logdir=logs, poll_interval=0.05),
        clock=lambda: NOW,
        nvml=_NoGpu(),
        notify_alerts=False,
    )


async def _loaded(pilot: Pilot) -> None:
    app = pilot.app
    assert isinstance(app, BoardApp)
    deadline = time.monotonic() + 15
    # Loaded, and NVML's (fixed) answer shown wherever the memory panel is on screen.
    while not app.loaded.is_set() or (
        any(p.gpu_live for p in app.on_screen) and not app.gpu_view.reason
    ):
        assert time.monotonic() < deadline
        await pilot.pause(0.05)
    await pilot.pause(0.1)


def test_snapshot_main_view(snap_compare, tmp_path: Path) -> None:
    """Run list, header with ETA, smoothed loss of the selected live run."""
    assert snap_compare(_app(_logs(tmp_path)), terminal_size=SIZE, run_before=_loaded, press=["j"])


def test_snapshot_triplets_with_comparison(snap_compare, tmp_path: Path) -> None:
    """The triplets panel with a second run overlaid."""
    assert snap_compare(
        _app(_logs(tmp_path)), terminal_size=SIZE, run_before=_loaded, press=["j", "c", "k", "2"]
    )


def test_snapshot_failed_run_alerts_and_lfw(snap_compare, tmp_path: Path) -> None:
    """A failed run's alert line and the LFW panel."""
    assert snap_compare(_app(_logs(tmp_path)), terminal_size=SIZE, run_before=_loaded, press=["3"])


def test_snapshot_wide_grid(snap_compare, tmp_path: Path) -> None:
    """200x50: six panels at once (loss, triplets, LFW, memory, speed, LR), run list, alerts."""
    assert snap_compare(_app(_logs(tmp_path)), terminal_size=WIDE, run_before=_loaded, press=["j"])


def test_snapshot_wide_comparison(snap_compare, tmp_path: Path) -> None:
    """Two runs marked: both overlaid on every panel of the grid, with a legend."""
    assert snap_compare(
        _app(_logs(tmp_path)),
        terminal_size=WIDE,
        run_before=_loaded,
        press=["space", "j", "j", "space"],
    )


def test_snapshot_config_view(snap_compare, tmp_path: Path) -> None:
    """The marked runs' settings side by side, the differing keys first, best LFW apart."""
    assert snap_compare(
        _app(_logs(tmp_path)),
        terminal_size=SIZE,
        run_before=_loaded,
        press=["space", "j", "j", "space", "v"],
    )


def test_snapshot_scalars_view(snap_compare, tmp_path: Path) -> None:
    """Every tag with its latest value and sparkline, filtered by a regex, one tag charted."""
    assert snap_compare(
        _app(_logs(tmp_path)),
        terminal_size=SIZE,
        run_before=_loaded,
        press=["j", "j", "slash", "l", "f", "w", "|", "l", "o", "s", "s", "enter", "down"],
    )
