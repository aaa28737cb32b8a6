"""The Textual board, driven headless with the pilot at a fixed terminal size."""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from board_eventlog import EventLog, event_file
from textual.pilot import Pilot
from textual.widgets import Static

from facenet_cli import events as ev
from facenet_cli.config import BoardConfig
from tui.app import BoardApp
from tui.gpu import GpuProcess, GpuStat, GpuView, Nvml, format_gpus, run_of_process
from tui.widgets import AlertBar, HelpScreen, MetricChart, RunHeader, RunTable

SIZE = (80, 24)


def _write_run(
    logs: Path,
    name: str,
    steps: range,
    *,
    loss: Callable[[int], float] | None = None,
    now: float | None = None,
) -> EventLog:
    now = time.time() if now is None else now
    log = EventLog(event_file(logs / name))
    loss = loss or (lambda s: 1.0 / (1 + s))
    for s in steps:
        wall = now - (steps.stop - s)
        log.scalar(ev.LOSS, loss(s), s, wall_time=wall)
        log.scalar(ev.LEARNING_RATE, 0.1, s, wall_time=wall)
        log.scalar(ev.TRIPLETS_ACTIVE_FRACTION, 0.5, s, wall_time=wall)
        log.scalar(ev.TRIPLETS_SELECTED, 300.0, s, wall_time=wall)
        log.scalar(ev.gpu_tag(ev.GPU_MEMORY_CURRENT_MB, "GPU:0"), 1000.0 + s, s, wall_time=wall)
    return log


def _app(logs: Path, **kwargs: object) -> BoardApp:
    return BoardApp(BoardConfig(logdir=logs, poll_interval=0.05), notify_alerts=False, **kwargs)  # type: ignore[arg-type]


async def _until(pilot: Pilot, cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for the board"
        await pilot.pause(0.05)


def _text(widget: Static) -> str:
    return str(widget.content)


def _points(app: BoardApp, panel: str) -> dict[str, int]:
    chart = app.query_one(f"#{panel}-chart", MetricChart)
    return {line.label: len(line.x) for line in chart.lines}


async def test_run_list_and_switching_runs(tmp_path: Path) -> None:
    _write_run(tmp_path, "alpha", range(0, 30))
    _write_run(tmp_path, "beta", range(0, 12))
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        table = app.query_one(RunTable)
        assert [str(k.value) for k in table.rows] == ["alpha", "beta"]
        assert str(table.get_cell("alpha", "status")) == "live"
        assert str(table.get_cell("alpha", "step")) == "29"
        assert app.selected == "alpha" and "alpha" in _text(app.query_one(RunHeader))
        assert _points(app, "loss")["loss"] == 30
        await pilot.press("j")
        assert app.selected == "beta"
        assert "beta" in _text(app.query_one(RunHeader))
        assert _points(app, "loss")["loss"] == 12
        await pilot.press("k")
        assert app.selected == "alpha"


async def test_charts_follow_a_writer_appending_events(tmp_path: Path) -> None:
    log = _write_run(tmp_path, "live", range(0, 5))
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        assert _points(app, "loss")["loss"] == 5
        for s in range(5, 9):
            log.scalar(ev.LOSS, 0.01, s, wall_time=time.time())
        await _until(pilot, lambda: _points(app, "loss").get("loss") == 9)
        assert "step 8" in _text(app.query_one(RunHeader))
        # A run that appears while the board runs joins the list.
        _write_run(tmp_path, "newcomer", range(0, 3))
        await _until(pilot, lambda: "newcomer" in [k.value for k in app.query_one(RunTable).rows])


async def test_alerts_on_crafted_data(tmp_path: Path) -> None:
    _write_run(tmp_path, "a-diverged", range(0, 10), loss=lambda s: math.nan if s > 7 else 1.0)
    collapsed = _write_run(tmp_path, "b-collapsed", range(0, 10))
    for s in range(10, 16):
        collapsed.scalar(ev.TRIPLETS_ACTIVE_FRACTION, 0.0, s, wall_time=time.time())
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        bar = app.query_one(AlertBar)
        assert bar.has_class("-active")
        assert "NaN" in _text(bar) and "1 other run(s) with alerts" in _text(bar)
        await pilot.press("j")
        assert "active triplets near zero" in _text(bar)
        assert app.summaries["b-collapsed"].warnings[0].kind == "collapse"


async def test_panels_smoothing_compare_and_help(tmp_path: Path) -> None:
    _write_run(tmp_path, "one", range(0, 20))
    _write_run(tmp_path, "two", range(0, 20), loss=lambda s: 2.0)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        assert set(_points(app, "loss")) == {"loss", "loss (raw)"}  # smoothed over raw
        await pilot.press("s")
        assert set(_points(app, "loss")) == {"loss"}
        await pilot.press("space", "j")  # mark "one", look at "two"
        assert app.marks == ("one",) and app.selected == "two"
        assert set(_points(app, "loss")) == {"loss", "one: loss"}
        await pilot.press("2")
        assert app.panel == "triplets"
        assert [p.id for p in app.query(".panel") if p.display] == ["triplets"]
        assert set(_points(app, "triplets")) == {
            "active fraction",
            "selected",
            "one: active fraction",
        }
        await pilot.press("right", "right")  # triplets -> LFW -> memory
        assert app.panel == "memory"
        assert set(_points(app, "memory")) == {"GPU:0 current"}
        await pilot.press("left", "4")
        assert app.panel == "memory"
        await pilot.press("c")  # the old compare key marks too
        assert app.marks == ("one", "two")
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("q")
    assert app.return_value == 0


async def test_data_arriving_under_the_help_screen(tmp_path: Path) -> None:
    log = _write_run(tmp_path, "r", range(0, 3))
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        await pilot.press("question_mark")
        log.scalar(ev.LOSS, 0.5, 3, wall_time=time.time())
        await _until(pilot, lambda: _points(app, "loss").get("loss") == 4)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert "step 3" in _text(app.query_one(RunHeader))


class _FakeNvml(Nvml):
    """A fixed NVML answer: the board's GPU panel without a GPU on the test machine."""

    def __init__(self, view: GpuView) -> None:
        super().__init__()
        self.view = view

    def read(self) -> GpuView:
        return self.view


async def test_gpu_panel_live_view_and_calm_no_gpu_state(tmp_path: Path) -> None:
    _write_run(tmp_path, "r", range(0, 3))
    gpu = GpuView((GpuStat(0, "H200", 1024.0, 143771.0, 37.0),))
    app = _app(tmp_path, nvml=_FakeNvml(gpu))
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        await pilot.press("4")
        live = app.query_one("#gpu-live", Static)
        await _until(pilot, lambda: "H200" in _text(live))
        assert "1,024 / 143,771 MiB" in _text(live) and "util 37%" in _text(live)
    calm = GpuView((), "no GPU: NVML unavailable (NVMLError)")
    assert format_gpus(calm) == "no GPU: NVML unavailable (NVMLError)"


async def test_gpu_view_names_the_run_of_each_process(tmp_path: Path) -> None:
    """Which process of which run holds how much: this test process holds r's event file."""
    log = _write_run(tmp_path, "r", range(0, 3))  # kept open, as a training process keeps it
    me, other = os.getpid(), 999_999_999
    procs = (GpuProcess(0, me, "python", 10240.0, 87.0), GpuProcess(0, other, "x", None))
    gpu = GpuView((GpuStat(0, "H200", 11264.0, 143771.0, 90.0, procs),))
    app = _app(tmp_path, nvml=_FakeNvml(gpu))
    async with app.run_test(size=(200, 50)) as pilot:  # the grid shows the memory panel
        await _until(pilot, app.loaded.is_set)
        live = app.query_one("#gpu-live", Static)
        await _until(pilot, lambda: "pid" in _text(live))
        assert f"pid {me} python: 10,240 MiB  sm 87%  run r" in _text(live)
        assert f"pid {other} x: ? MiB" in _text(live)
        assert "TensorFlow current / peak" in app.query_one("#memory-chart", MetricChart).title
        assert set(_points(app, "memory")) == {"GPU:0 current"}  # the allocator, beside NVML
    log.close()


def test_run_of_process_reads_the_open_files(tmp_path: Path) -> None:
    run = tmp_path / "logs" / "r"
    log = _write_run(tmp_path / "logs", "r", range(0, 2))
    (tmp_path / "logs" / "idle").mkdir()
    dirs = {"r": run, "idle": tmp_path / "logs" / "idle"}
    assert run_of_process(os.getpid(), dirs) == "r"
    assert run_of_process(os.getpid(), {"idle": dirs["idle"]}) is None
    assert run_of_process(999_999_999, dirs) is None  # no such process: no answer, no error
    log.close()
    assert run_of_process(os.getpid(), dirs) is None


def test_nvml_answers_are_read_into_gpus_and_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML's answers (the calls nvidia-ml-py makes) become per-GPU and per-process figures."""

    class Answer:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    class NotFound(Exception):
        pass

    calls = {
        "nvmlInit": lambda: None,
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: f"h{i}",
        "nvmlDeviceGetName": lambda h: b"NVIDIA H200",
        "nvmlDeviceGetMemoryInfo": lambda h: Answer(used=3 * 2**30, total=141 * 2**30),
        "nvmlDeviceGetUtilizationRates": lambda h: Answer(gpu=55),
        "nvmlDeviceGetComputeRunningProcesses": lambda h: [
            Answer(pid=11, usedGpuMemory=2**30),
            Answer(pid=12, usedGpuMemory=2 * 2**30),
        ],
        "nvmlDeviceGetProcessUtilization": lambda h, since: [Answer(pid=12, smUtil=40)],
    }
    module = type(sys)("pynvml")
    module.__dict__.update(calls)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    (gpu,) = Nvml().read().gpus
    assert (gpu.name, gpu.memory_used_mb, gpu.utilization_pct) == ("NVIDIA H200", 3072.0, 55.0)
    assert [(p.pid, p.memory_mb, p.sm_util_pct) for p in gpu.processes] == [
        (12, 2048.0, 40.0),  # the biggest first
        (11, 1024.0, None),  # no utilisation sample: unknown, not zero
    ]

    def no_samples(h: object, since: int) -> list[object]:
        raise NotFound

    module.nvmlDeviceGetProcessUtilization = no_samples
    (gpu,) = Nvml().read().gpus
    assert [p.sm_util_pct for p in gpu.processes] == [None, None]


def test_nvml_without_the_package_is_a_calm_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # ``import pynvml`` raises ImportError
    view = Nvml().read()
    assert view == GpuView((), "no GPU view: nvidia-ml-py is not installed")
    assert format_gpus(view) == view.reason


def test_nvml_on_this_machine_answers_gpus_or_a_reason() -> None:
    view = Nvml().read()
    if view.gpus:  # a GPU host: real figures
        assert all(0 <= g.memory_used_mb <= g.memory_total_mb for g in view.gpus)
        assert format_gpus(view).startswith("GPU0 ")
    else:  # no package, driver or device: one calm line, never an exception or a blank
        assert view.reason.startswith("no GPU")
        assert format_gpus(view) == view.reason


async def test_waits_for_a_logdir_that_does_not_exist_yet(tmp_path: Path) -> None:
    logs = tmp_path / "not-yet"
    app = _app(logs)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        assert "waiting for event files" in _text(app.query_one(RunHeader))
        _write_run(logs, "first", range(0, 2))
        await _until(pilot, lambda: app.selected == "first")


def _shown_panels(app: BoardApp) -> list[str]:
    return [str(p.id) for p in app.query(".panel") if p.display]


@pytest.mark.parametrize(("size", "panels"), [((80, 24), ["loss"]), ((120, 40), 4), ((200, 50), 6)])
async def test_layout_fits(tmp_path: Path, size: tuple[int, int], panels: list[str] | int) -> None:
    """One panel below 120x36, a grid of legible charts above it; the run list stays."""
    for i in range(10):
        _write_run(tmp_path, f"run-{i:02d}", range(0, 5))
    app = _app(tmp_path)
    async with app.run_test(size=size) as pilot:
        await _until(pilot, app.loaded.is_set)
        await pilot.pause(0.1)
        shown = _shown_panels(app)
        assert shown == panels if isinstance(panels, list) else len(shown) == panels
        for key in shown:
            chart = app.query_one(f"#{key}-chart", MetricChart)
            assert chart.size.height >= 8, (key, chart.size)  # charts keep room to read
            assert chart.size.width >= (70 if len(shown) == 1 else 50), (key, chart.size)
            assert chart.lines or key in ("lfw", "speed")  # the panels without data here
        assert app.query_one(RunTable).row_count == 10
        assert app.query_one(RunTable).size.height >= 5


async def test_resizing_switches_between_one_panel_and_the_grid(tmp_path: Path) -> None:
    _write_run(tmp_path, "r", range(0, 5))
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        assert _shown_panels(app) == ["loss"]
        await pilot.resize_terminal(200, 50)
        await _until(pilot, lambda: len(_shown_panels(app)) == 6)
        assert _shown_panels(app) == ["loss", "triplets", "lfw", "memory", "speed", "lr"]
        assert app.grid == (3, 2) and _points(app, "triplets")["active fraction"] == 5
        await pilot.press("z")  # the current panel alone, then the grid again
        assert _shown_panels(app) == ["loss"]
        await pilot.press("z")
        assert len(_shown_panels(app)) == 6
        await pilot.resize_terminal(*SIZE)
        await _until(pilot, lambda: _shown_panels(app) == ["loss"])


def test_mtime_only_changes_update_ages(tmp_path: Path) -> None:
    # Guard for the idle path: an unchanged file costs a stat, not a read.
    _write_run(tmp_path, "r", range(0, 3))
    reader = ev.LogdirReader(tmp_path)
    assert reader.poll(rescan=True) == {"r"}
    assert reader.poll(rescan=True) == set()
    path = next((tmp_path / "r").iterdir())
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert reader.poll() == {"r"}


async def test_quit_stops_the_polling_thread(tmp_path: Path) -> None:
    _write_run(tmp_path, "r", range(0, 3))
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.loaded.is_set)
        await pilot.press("q")
    await asyncio.sleep(0.3)
    assert app._stop.is_set()  # noqa: SLF001
    assert not [w for w in app.workers if w.is_running]
