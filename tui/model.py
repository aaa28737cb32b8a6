"""Run state for the board: status, alerts, ETA, smoothing and decimation (no Textual here).

Everything is computed from what the event files and marker files show, with the clock passed
in, so the same numbers appear in the live board, in ``--once`` and in tests.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from facenet_cli import events as ev
from facenet_cli.config import default_models_dir

STALL_AFTER_S = 300.0
"""A run with no new event for this long (and no marker) is ``stalled``..."""
STALL_INTERVALS = 20.0
"""...or for this many of its own typical intervals between writes, whichever is longer."""
ALERT_HORIZON_S = 24 * 3600.0
"""Only runs active within this window raise alerts: old runs are history, not news."""
COLLAPSE_ACTIVE_FRACTION = 0.01
COLLAPSE_DISTANCE = 1e-3
COLLAPSE_WINDOW = 5

WARNING = "warning"
INFO = "info"


@dataclass(frozen=True)
class Alert:
    """Something worth a look. Warnings make ``board --once`` exit non-zero; infos do not."""

    kind: str  # nan_loss | collapse | stalled | failed | new_best
    severity: str
    message: str


@dataclass(frozen=True)
class RunSummary:
    """The numbers shown for one run in the run list, the header and ``--once``."""

    name: str
    status: str  # live | stalled | finished | failed | waiting
    last_step: int | None
    age_s: float | None
    best_accuracy: float | None
    best_accuracy_step: int | None
    latest: dict[str, float]
    alerts: tuple[Alert, ...]
    steps_per_s: float | None
    total_steps: int | None
    eta_s: float | None
    corrupt_records: int
    thinned: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    label: str = ""  # the name shown, when not ``name`` (``board LOGS/RUN``: the folder's name)

    @property
    def shown(self) -> str:
        """The run's name as shown."""
        return self.label or self.name

    @property
    def warnings(self) -> tuple[Alert, ...]:
        """Alerts of warning severity."""
        return tuple(a for a in self.alerts if a.severity == WARNING)


def last_activity(run: ev.RunState) -> float | None:
    """Newest of the last event's wall time and the event files' modification time."""
    times = [t for t in (run.last_wall_time, run.last_write or None) if t is not None]
    return max(times) if times else None


def typical_interval(run: ev.RunState) -> float | None:
    """Median seconds between a run's recent points of its busiest tag."""
    if not run.series:
        return None
    series = max(run.series.values(), key=len)
    if len(series) < 3:
        return None
    walls = np.frombuffer(series.wall_times, dtype=np.float64)[-50:].copy()
    gaps = np.diff(walls)
    gaps = gaps[gaps > 0]
    return float(np.median(gaps)) if gaps.size else None


def run_status(run: ev.RunState, now: float, interval: float | None = None) -> str:
    """``finished`` / ``failed`` from train's marker files, else ``live`` or ``stalled``.

    A run is stalled when nothing was written for ``STALL_AFTER_S`` seconds, or for
    ``STALL_INTERVALS`` times its own typical interval between writes if that is longer (slow
    models write rarely). A run with no event yet is ``waiting``. ``interval`` is the run's
    :func:`typical_interval` when already known.
    """
    if run.marker is not None:
        return run.marker
    last = last_activity(run)
    if last is None or run.events == 0:
        return "waiting"
    if interval is None:
        interval = typical_interval(run)
    limit = max(STALL_AFTER_S, STALL_INTERVALS * (interval or 0.0))
    return "stalled" if now - last > limit else "live"


def steps_per_second(run: ev.RunState) -> float | None:
    """Recent training speed from the loss tag's last points (steps per wall-clock second)."""
    series = run.series.get(ev.LOSS) or (max(run.series.values(), key=len) if run.series else None)
    if series is None or len(series) < 2:
        return None
    steps = np.frombuffer(series.steps, dtype=np.int64)[-100:].astype(np.float64)
    walls = np.frombuffer(series.wall_times, dtype=np.float64)[-100:].copy()
    dt = walls[-1] - walls[0]
    ds = steps[-1] - steps[0]
    return float(ds / dt) if dt > 0 and ds > 0 else None


CONFIG_NAME = "config.toml"
"""``train`` saves each run's settings under this name, beside its checkpoints."""


def config_paths(run: ev.RunState, models_dir: Path | None = None) -> list[Path]:
    """Where a run's ``config.toml`` may be, in the order they are tried.

    In the run's log folder; in ``models_dir/<run>`` (``board --models-dir``); in a ``models``
    folder beside the log directory (``--logs-base-dir X/logs --models-base-dir X/models``, the
    demo's layout); in the default models directory.
    """
    # Event files directly in the log directory (``board LOGS/RUN``): the folder is the run.
    name = run.label
    paths = [run.path / CONFIG_NAME]
    if models_dir is not None:
        paths.append(Path(models_dir).expanduser() / name / CONFIG_NAME)
    paths.append(run.path.parent.parent / "models" / name / CONFIG_NAME)
    paths.append(default_models_dir() / name / CONFIG_NAME)
    return paths


def run_config(
    run: ev.RunState, models_dir: Path | None = None
) -> tuple[dict[str, Any], Path] | None:
    """The run's saved settings and the file they came from; None when none is found."""
    for path in config_paths(run, models_dir):
        try:
            return tomllib.loads(path.read_text()), path
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
            continue
    return None


def planned_steps(config: dict[str, Any]) -> int | None:
    """The step a run stops at: ``max_steps``, ``max_nrof_epochs * epoch_size``, the smaller."""

    def positive(key: str) -> int | None:
        value = config.get(key)
        return value if isinstance(value, int) and value > 0 else None

    epochs, size, steps = positive("max_nrof_epochs"), positive("epoch_size"), positive("max_steps")
    planned = [n for n in (steps, epochs * size if epochs and size else None) if n is not None]
    return min(planned) if planned else None


def total_steps(
    run: ev.RunState, models_dir: Path | None = None, config: dict[str, Any] | None = None
) -> int | None:
    """The run's planned number of steps.

    From the ``progress/total_steps`` scalar when logged, else from the run's ``config.toml``
    (see :func:`config_paths` and :func:`planned_steps`): ``config`` when the caller read it
    already (``{}``: none was found), else read here.
    """
    series = run.series.get(ev.TOTAL_STEPS)
    if series is not None and series.latest is not None and series.latest[2] > 0:
        return int(series.latest[2])
    if config is None:
        found = run_config(run, models_dir)
        config = {} if found is None else found[0]
    return planned_steps(config)


def best_accuracy(run: ev.RunState) -> tuple[float, int] | None:
    """Best finite LFW accuracy and the step it was reached at."""
    series = run.series.get(ev.LFW_ACCURACY)
    if series is None or not len(series):
        return None
    values = np.frombuffer(series.values, dtype=np.float64).copy()
    finite = np.isfinite(values)
    if not finite.any():
        return None
    i = int(np.argmax(np.where(finite, values, -np.inf)))
    return float(values[i]), int(series.steps[i])


def _tail(run: ev.RunState, tag: str, n: int) -> np.ndarray | None:
    series = run.series.get(tag)
    if series is None or len(series) < n:
        return None
    return np.frombuffer(series.values, dtype=np.float64)[-n:].copy()


def data_alerts(run: ev.RunState) -> tuple[Alert, ...]:
    """Alerts that depend on the points alone: NaN loss, collapse, a new best accuracy."""
    alerts: list[Alert] = []
    loss = run.series.get(ev.LOSS)
    if loss is not None and loss.latest is not None:
        values = np.frombuffer(loss.values, dtype=np.float64)[-100:]
        if not math.isfinite(loss.latest[2]) or not np.isfinite(values).all():
            alerts.append(Alert("nan_loss", WARNING, f"loss is NaN/inf near step {loss.latest[0]}"))
    active = _tail(run, ev.TRIPLETS_ACTIVE_FRACTION, COLLAPSE_WINDOW)
    pos = _tail(run, ev.TRIPLETS_POS_DIST, COLLAPSE_WINDOW)
    neg = _tail(run, ev.TRIPLETS_NEG_DIST, COLLAPSE_WINDOW)
    if active is not None and np.all(active < COLLAPSE_ACTIVE_FRACTION):
        alerts.append(
            Alert(
                "collapse",
                WARNING,
                f"active triplets near zero ({active[-1]:.3g}) for {COLLAPSE_WINDOW} steps",
            )
        )
    elif (
        pos is not None
        and neg is not None
        and np.all(np.abs(pos) < COLLAPSE_DISTANCE)
        and np.all(np.abs(neg) < COLLAPSE_DISTANCE)
    ):
        recent_loss = _tail(run, ev.LOSS, COLLAPSE_WINDOW)
        stuck = ""
        if recent_loss is not None and np.isfinite(recent_loss).all():
            stuck = f", loss stuck at {recent_loss[-1]:.3g} (the margin)"
        alerts.append(Alert("collapse", WARNING, f"embedding distances near zero{stuck}"))
    acc = run.series.get(ev.LFW_ACCURACY)
    best = best_accuracy(run)
    if acc is not None and best is not None and len(acc) >= 2 and acc.latest is not None:
        if acc.latest[0] == best[1]:
            alerts.append(Alert("new_best", INFO, f"new best LFW accuracy {best[0]:.4f}"))
    return tuple(alerts)


def detect_alerts(
    run: ev.RunState, status: str, now: float, from_data: tuple[Alert, ...] | None = None
) -> tuple[Alert, ...]:
    """Alerts for one run: NaN loss, collapse, a stalled or failed writer, a new best accuracy.

    Warnings concern runs active within ``ALERT_HORIZON_S`` only.

    Args:
        run: The run.
        status: Its :func:`run_status`.
        now: The clock.
        from_data: :func:`data_alerts` of the run, when already computed.
    """
    last = last_activity(run)
    recent = last is not None and now - last <= ALERT_HORIZON_S
    alerts = [
        a
        for a in (data_alerts(run) if from_data is None else from_data)
        if recent or a.severity != WARNING
    ]
    if recent and status == "stalled" and last is not None:
        alerts.append(Alert("stalled", WARNING, f"no new events for {format_age(now - last)}"))
    if recent and status == "failed":
        reason = f": {run.marker_reason}" if run.marker_reason else ""
        alerts.append(Alert("failed", WARNING, f"training failed{reason}"))
    order = {"nan_loss": 0, "collapse": 1, "stalled": 2, "failed": 3, "new_best": 4}
    return tuple(sorted(alerts, key=lambda a: order.get(a.kind, 9)))


@dataclass(frozen=True)
class RunStats:
    """What depends on the points read only (recomputed when the run's version changes)."""

    version: int
    last_step: int | None
    best: tuple[float, int] | None
    rate: float | None
    total: int | None
    latest: dict[str, float]
    thinned: dict[str, int]
    alerts: tuple[Alert, ...]
    interval: float | None


def run_stats(
    run: ev.RunState, models_dir: Path | None = None, config: dict[str, Any] | None = None
) -> RunStats:
    """The data-only part of a summary (the board caches it per run version); ``config`` as
    for :func:`total_steps`."""
    return RunStats(
        version=run.version,
        last_step=run.last_step,
        best=best_accuracy(run),
        rate=steps_per_second(run),
        total=total_steps(run, models_dir, config),
        latest=run.latest_values(),
        thinned={t: s.thinned for t, s in run.series.items() if s.thinned > 1},
        alerts=data_alerts(run),
        interval=typical_interval(run),
    )


def summarize(
    run: ev.RunState, now: float, stats: RunStats | None = None, models_dir: Path | None = None
) -> RunSummary:
    """Everything the board shows about ``run`` at time ``now`` (seconds since the epoch).

    Args:
        run: The run.
        now: The clock.
        stats: Its :func:`run_stats` if still current (same ``run.version``).
        models_dir: Where to look for the run's ``config.toml`` first (``--models-dir``).
    """
    if stats is None or stats.version != run.version:
        stats = run_stats(run, models_dir)
    status = run_status(run, now, stats.interval)
    last = last_activity(run)
    best = stats.best
    eta = None
    if stats.rate and stats.total and stats.last_step is not None and status == "live":
        eta = max(0.0, (stats.total - stats.last_step) / stats.rate)
    return RunSummary(
        name=run.name,
        label="" if run.label == run.name else run.label,
        status=status,
        last_step=stats.last_step,
        age_s=None if last is None else max(0.0, now - last),
        best_accuracy=None if best is None else best[0],
        best_accuracy_step=None if best is None else best[1],
        latest=stats.latest,
        alerts=detect_alerts(run, status, now, stats.alerts),
        steps_per_s=stats.rate,
        total_steps=stats.total,
        eta_s=eta,
        corrupt_records=run.corrupt_records,
        thinned=stats.thinned,
        reason=run.marker_reason,
    )


class AlertLog:
    """Which alerts were reported already: each once, a new best accuracy once per value."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, str]] = set()

    def new(self, summaries: Iterable[RunSummary], *, infos: bool) -> list[tuple[str, Alert]]:
        """Alerts of ``summaries`` not reported before, as ``(run, alert)``; infos only when
        ``infos`` (not for what was there at start)."""
        out = []
        for s in summaries:
            for a in s.alerts:
                key = (s.name, a.kind, a.message if a.kind == "new_best" else "")
                if key not in self._seen:
                    self._seen.add(key)
                    if infos or a.severity == WARNING:
                        out.append((s.name, a))
        return out


# ------------------------------------------------------------------------------- chart maths


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's smoothing: a debiased exponential moving average.

    Non-finite values are skipped (they keep their place in the output), as TensorBoard does.
    Vectorised in blocks so a million points smooth in milliseconds.

    Args:
        values: The raw series.
        weight: 0 = no smoothing, towards 1 = smoother (TensorBoard's default is 0.6).
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if n == 0 or weight <= 0:
        return x.copy()
    bad = ~np.isfinite(x)
    good = x[~bad]
    m = len(good)
    out_good = np.empty(m, dtype=np.float64)
    # Within a block, y_i = w^(i+1) * carry + (1 - w) * w^i * sum_k<=i x_k w^-k; the block is
    # short enough that w^-k stays far from overflow.
    block = int(min(4096, max(8, 100 / -math.log10(weight)))) if weight < 1 else 4096
    k = np.arange(block, dtype=np.float64)
    inv = weight**-k
    fwd = weight**k
    carry = 0.0
    for start in range(0, m, block):
        xb = good[start : start + block]
        b = len(xb)
        y = fwd[:b] * weight * carry + (1.0 - weight) * fwd[:b] * np.cumsum(xb * inv[:b])
        out_good[start : start + b] = y
        carry = y[-1]
    out_good /= 1.0 - weight ** np.arange(1, m + 1, dtype=np.float64)
    out = x.copy()
    out[~bad] = out_good
    return out


def minmax_decimate(x: np.ndarray, y: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a series to at most ``2 * buckets`` points keeping each bucket's min and max.

    Points are bucketed by index; each bucket contributes its minimum and its maximum in
    their original order, so spikes (a NaN-free loss blow-up, a one-step dip) stay visible at
    any chart width. Non-finite values are dropped here (alerts report them).
    """
    finite = np.isfinite(y)
    if not finite.all():
        x, y = x[finite], y[finite]
    n = len(y)
    if buckets <= 0 or n <= 2 * buckets:
        return x, y
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    # reduceat gives each bucket's min/max; argmin/argmax need a per-bucket search, done by
    # comparing against the broadcast extreme and taking the first match in each bucket.
    mins = np.minimum.reduceat(y, starts)
    maxs = np.maximum.reduceat(y, starts)
    bucket = np.repeat(np.arange(buckets), np.diff(edges))
    is_min = y == mins[bucket]
    is_max = y == maxs[bucket]
    first_min = np.full(buckets, n, dtype=np.int64)
    first_max = np.full(buckets, n, dtype=np.int64)
    idx = np.arange(n)
    np.minimum.at(first_min, bucket[is_min], idx[is_min])
    np.minimum.at(first_max, bucket[is_max], idx[is_max])
    keep = np.unique(np.concatenate([first_min, first_max]))
    return x[keep], y[keep]


def format_age(seconds: float | None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}"
    return f"{s // 86400}d"


def format_eta(seconds: float | None) -> str:
    """``1h05m`` style; ``-`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def format_value(value: float | None) -> str:
    """A compact number for a narrow column."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.4g}"
