"""``facenet board --once``: the latest values of every run as a table or JSON, for scripts."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from facenet_cli import events as ev
from facenet_cli.errors import EXIT_ALERT, InputError

from tui import model
from tui.panels import is_facenet_tag


def read_summaries(
    logdir: Path, now: float | None = None, models_dir: Path | None = None
) -> tuple[list[model.RunSummary], dict[Path, str]]:
    """Read every run under ``logdir`` once and summarise it.

    Returns:
        The summaries, and the entries that could not be read with the reason for each.

    Raises:
        InputError: ``logdir`` does not exist or is not a directory.
    """
    if not logdir.exists():
        raise InputError(f"{logdir}: no such log directory")
    if not logdir.is_dir():
        raise InputError(f"{logdir}: not a directory (give the log directory holding the runs)")
    reader = ev.LogdirReader(logdir)
    reader.poll(rescan=True)
    now = time.time() if now is None else now
    summaries = [model.summarize(run, now, models_dir=models_dir) for run in reader.runs.values()]
    return summaries, reader.unreadable


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def as_json(
    logdir: Path, summaries: list[model.RunSummary], unreadable: dict[Path, str] | None = None
) -> dict[str, Any]:
    """The ``--json`` document: ``{"logdir", "runs": [...], "alerts", "unreadable": [...]}``.

    ``latest`` holds every scalar tag of the run (facenet's own and any other writer's).
    Non-finite values become null (JSON has no NaN); the ``nan_loss`` alert says so.
    """
    runs = []
    for s in summaries:
        runs.append(
            {
                "name": s.shown,
                "status": s.status,
                "last_step": s.last_step,
                "age_s": None if s.age_s is None else round(s.age_s, 3),
                "best_lfw_accuracy": s.best_accuracy,
                "best_lfw_accuracy_step": s.best_accuracy_step,
                "steps_per_s": s.steps_per_s,
                "total_steps": s.total_steps,
                "eta_s": s.eta_s,
                "corrupt_records": s.corrupt_records,
                "latest": {tag: _finite(v) for tag, v in sorted(s.latest.items())},
                "thinned": s.thinned,
                "alerts": [
                    {"kind": a.kind, "severity": a.severity, "message": a.message} for a in s.alerts
                ],
            }
        )
    warnings = sum(len(s.warnings) for s in summaries)
    skipped = [{"path": str(p), "reason": why} for p, why in sorted((unreadable or {}).items())]
    return {"logdir": str(logdir), "runs": runs, "alerts": warnings, "unreadable": skipped}


def render_table(
    logdir: Path,
    summaries: list[model.RunSummary],
    out: TextIO,
    unreadable: dict[Path, str] | None = None,
) -> None:
    """A Rich table (plain text off a terminal) fitting 80 columns, then one line per alert,
    one per unreadable entry, and the latest values of runs that hold none of facenet's tags."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=None if out.isatty() else 100, highlight=False)
    for path, why in sorted((unreadable or {}).items()):
        console.print(f"unreadable: {path}: {why}", soft_wrap=True)  # one line per entry
    if not summaries:
        console.print(f"no runs under {logdir}")
        return
    table = Table(title=str(logdir), title_justify="left", box=None, pad_edge=False)
    for col, justify in (
        ("run", "left"),
        ("status", "left"),
        ("step", "right"),
        ("age", "right"),
        ("loss", "right"),
        ("lr", "right"),
        ("best LFW", "right"),
        ("img/s", "right"),
        ("ETA", "right"),
    ):
        table.add_column(col, justify=justify, no_wrap=col != "run")  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(
            s.shown,
            s.status,
            "-" if s.last_step is None else str(s.last_step),
            model.format_age(s.age_s),
            model.format_value(s.latest.get(ev.LOSS)),
            model.format_value(s.latest.get(ev.LEARNING_RATE)),
            model.format_value(s.best_accuracy),
            model.format_value(s.latest.get(ev.IMAGES_PER_SEC)),
            model.format_eta(s.eta_s),
        )
    console.print(table)
    for s in summaries:
        for a in s.alerts:
            console.print(f"{a.severity}: {s.shown}: {a.message}")
        if s.corrupt_records:
            console.print(f"note: {s.shown}: {s.corrupt_records} corrupt record(s) skipped")
        if s.latest and not any(is_facenet_tag(tag) for tag in s.latest):
            values = ", ".join(f"{t}={model.format_value(v)}" for t, v in sorted(s.latest.items()))
            console.print(f"{s.shown}: {values}", soft_wrap=True)


def print_once(
    logdir: Path,
    *,
    as_json_output: bool,
    out: TextIO | None = None,
    models_dir: Path | None = None,
) -> int:
    """Print every run's latest values; returns ``EXIT_ALERT`` when a warning is active."""
    out = sys.stdout if out is None else out
    summaries, unreadable = read_summaries(logdir, models_dir=models_dir)
    if as_json_output:
        out.write(json.dumps(as_json(logdir, summaries, unreadable), indent=2) + "\n")
    else:
        render_table(logdir, summaries, out, unreadable)
    return EXIT_ALERT if any(s.warnings for s in summaries) else 0
