"""Run status, alerts, ETA, smoothing and decimation (pure functions of the read state)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from board_eventlog import EventLog, event_file

from facenet_cli import events as ev
from tui import model

NOW = 2.0e9


def _run(
    tmp_path: Path,
    name: str,
    scalars: dict[str, list[float]],
    *,
    last_wall: float = NOW,
    interval: float = 1.0,
    marker: str | None = None,
    extra: str = "",
) -> ev.RunState:
    """A run whose points end at ``last_wall`` (one step per ``interval`` seconds)."""
    path = event_file(tmp_path / name)
    log = EventLog(path)
    for tag, values in scalars.items():
        n = len(values)
        for i, v in enumerate(values):
            log.scalar(tag, v, i * 10, wall_time=last_wall - (n - 1 - i) * interval)
    log.close()
    os.utime(path, (last_wall, last_wall))
    if marker:
        (tmp_path / name / marker).write_text(extra)
    reader = ev.LogdirReader(tmp_path)
    reader.poll(rescan=True)
    return reader.runs[name]


def _kinds(run: ev.RunState, now: float = NOW) -> set[str]:
    return {a.kind for a in model.summarize(run, now).alerts}


def test_status_from_markers_and_time(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", {ev.LOSS: [1.0] * 5})
    assert model.run_status(run, NOW + 10) == "live"
    assert model.run_status(run, NOW + model.STALL_AFTER_S + 1) == "stalled"
    slow = _run(tmp_path, "slow", {ev.LOSS: [1.0] * 5}, interval=60.0)  # one point a minute
    assert model.run_status(slow, NOW + model.STALL_AFTER_S + 1) == "live"
    assert model.run_status(slow, NOW + 60 * model.STALL_INTERVALS + 1) == "stalled"
    done = _run(tmp_path, "done", {ev.LOSS: [1.0]}, marker=ev.FINISHED_MARKER)
    failed = _run(tmp_path, "failed", {ev.LOSS: [1.0]}, marker=ev.FAILED_MARKER, extra="OOM\n")
    assert model.run_status(done, NOW + 1e6) == "finished"
    assert model.summarize(failed, NOW).reason == "OOM"
    assert model.run_status(ev.RunState("empty", tmp_path), NOW) == "waiting"


def test_nan_loss_alert(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", {ev.LOSS: [1.0, 0.9, math.nan]})
    summary = model.summarize(run, NOW)
    assert "nan_loss" in _kinds(run)
    assert summary.warnings and summary.warnings[0].severity == model.WARNING
    assert _kinds(_run(tmp_path, "b", {ev.LOSS: [1.0, 0.9, 0.8]})) == set()


def test_collapse_alerts(tmp_path: Path) -> None:
    n = model.COLLAPSE_WINDOW
    dead = _run(tmp_path, "dead", {ev.TRIPLETS_ACTIVE_FRACTION: [0.3] + [0.0] * n})
    assert "collapse" in _kinds(dead)
    one_quiet = _run(tmp_path, "fine", {ev.TRIPLETS_ACTIVE_FRACTION: [0.3] * n + [0.0]})
    assert "collapse" not in _kinds(one_quiet)
    squashed = _run(
        tmp_path,
        "squashed",
        {
            ev.TRIPLETS_POS_DIST: [0.0] * n,
            ev.TRIPLETS_NEG_DIST: [1e-5] * n,
            ev.LOSS: [0.2] * n,
        },
    )
    alerts = model.summarize(squashed, NOW).alerts
    assert [a.kind for a in alerts] == ["collapse"]
    assert "0.2" in alerts[0].message  # the loss stuck at the margin is reported


def test_stalled_and_failed_alerts_respect_the_horizon(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", {ev.LOSS: [1.0] * 3})
    assert "stalled" in _kinds(run, NOW + model.STALL_AFTER_S + 5)
    assert _kinds(run, NOW + model.ALERT_HORIZON_S + 5) == set()  # old runs are history
    failed = _run(tmp_path, "f", {ev.LOSS: [1.0]}, marker=ev.FAILED_MARKER)
    assert "failed" in _kinds(failed)
    assert "failed" not in _kinds(failed, NOW + model.ALERT_HORIZON_S + 5)


def test_new_best_accuracy_is_an_info(tmp_path: Path) -> None:
    better = _run(tmp_path, "a", {ev.LFW_ACCURACY: [0.8, 0.85, 0.9]})
    summary = model.summarize(better, NOW)
    assert [(a.kind, a.severity) for a in summary.alerts] == [("new_best", model.INFO)]
    assert (summary.best_accuracy, summary.best_accuracy_step) == (pytest.approx(0.9), 20)
    assert not summary.warnings
    worse = _run(tmp_path, "b", {ev.LFW_ACCURACY: [0.8, 0.9, 0.85]})
    assert _kinds(worse) == set()


def test_eta_from_total_steps_tag_or_config(tmp_path: Path) -> None:
    run = _run(tmp_path, "a", {ev.LOSS: [1.0] * 11, ev.TOTAL_STEPS: [1100.0]}, interval=2.0)
    s = model.summarize(run, NOW)
    assert s.steps_per_s == pytest.approx(5.0)  # 10 steps every 2 s
    assert s.total_steps == 1100 and s.eta_s == pytest.approx((1100 - 100) / 5.0)
    other = _run(tmp_path, "b", {ev.LOSS: [1.0] * 11}, interval=2.0)
    (tmp_path / "b" / "config.toml").write_text("max_nrof_epochs = 3\nepoch_size = 100\n")
    assert model.summarize(other, NOW).total_steps == 300
    (tmp_path / "b" / "config.toml").write_text("max_steps = 150\nmax_nrof_epochs = 3\n")
    assert model.summarize(other, NOW).eta_s == pytest.approx(10.0)
    # train keeps config.toml beside the checkpoints: <models>/<run>/config.toml
    third = _run(tmp_path, "c", {ev.LOSS: [1.0] * 11}, interval=2.0)
    models = Path(os.environ["FACENET_MODELS"]) / "c"
    models.mkdir(parents=True, exist_ok=True)
    (models / "config.toml").write_text("max_nrof_epochs = 2\nepoch_size = 1000\n")
    assert model.summarize(third, NOW).total_steps == 2000


def test_eta_of_a_run_stopping_at_max_steps(tmp_path: Path) -> None:
    """train --max-steps 60 --logs-base-dir X/logs --models-base-dir X/models, seen at step 24."""
    log = EventLog(event_file(tmp_path / "logs" / "run"))
    for step in range(25):  # one step a second
        log.scalar(ev.LOSS, 1.0, step, wall_time=NOW - 24 + step)
    log.close()
    reader = ev.LogdirReader(tmp_path / "logs")
    reader.poll(rescan=True)
    run = reader.runs["run"]
    assert model.summarize(run, NOW).eta_s is None  # no config.toml anywhere yet
    models = tmp_path / "models" / "run"
    models.mkdir(parents=True)
    (models / "config.toml").write_text(
        "max_steps = 60\nmax_nrof_epochs = 500\nepoch_size = 1000\n"
    )
    s = model.summarize(run, NOW)  # found beside the log directory
    assert s.total_steps == 60 and s.eta_s == pytest.approx(36.0)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "run").mkdir(parents=True)
    (elsewhere / "run" / "config.toml").write_text("max_nrof_epochs = 2\nepoch_size = 20\n")
    s = model.summarize(run, NOW, models_dir=elsewhere)  # --models-dir comes first
    assert s.total_steps == 40 and s.eta_s == pytest.approx(16.0)
    assert model.planned_steps({"max_steps": 5000, "max_nrof_epochs": 2, "epoch_size": 100}) == 200
    assert model.planned_steps({"max_steps": 0}) is None


def _ema_reference(values: np.ndarray, weight: float) -> np.ndarray:
    out, last, n = [], 0.0, 0
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        n += 1
        out.append(last / (1 - weight**n))
    return np.array(out)


@pytest.mark.parametrize("weight", [0.0, 0.6, 0.95, 0.999])
def test_ema_matches_tensorboard_smoothing(weight: float) -> None:
    values = np.random.default_rng(0).normal(3.0, 2.0, 3000)
    values[[0, 17, 2000]] = [np.nan, np.inf, np.nan]
    got = model.ema(values, weight)
    want = values.copy() if weight == 0 else _ema_reference(values, weight)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_minmax_decimation_keeps_extremes_in_order() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=100_000)
    y[12_345] = 50.0  # a one-point spike must survive
    y[99_000] = -50.0
    x = np.arange(len(y), dtype=float)
    dx, dy = model.minmax_decimate(x, y, 80)
    assert len(dx) <= 160
    assert np.all(np.diff(dx) > 0)
    assert 50.0 in dy and -50.0 in dy
    # Every bucket's min and max are kept.
    for chunk in np.array_split(np.arange(len(y)), 80)[:5]:
        assert y[chunk].max() in dy and y[chunk].min() in dy
    sx, sy = model.minmax_decimate(x[:100], y[:100], 80)  # short series pass through
    assert len(sx) == 100


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (5, "5s"), (125, "2m"), (7300, "2h01"), (200000, "2d")]
)
def test_format_age(seconds: float | None, text: str) -> None:
    assert model.format_age(seconds) == text
