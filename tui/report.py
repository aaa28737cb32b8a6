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


def read_summaries(logdir: Path, now: float | None = None) -> list[model.RunSummary]:
    """Read every run under ``logdir`` once and summarise it.

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
    return [model.summarize(run, now) for run in reader.runs.values()]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def as_json(logdir: Path, summaries: list[model.RunSummary]) -> dict[str, Any]:
    """The ``--json`` document: ``{"logdir", "runs": [...], "alerts"}``.

    Non-finite values become null (JSON has no NaN); the ``nan_loss`` alert says so.
    """
    runs = []
    for s in summaries:
        runs.append(
            {
                "name": s.name,
                "status": s.status,
                "last_step": s.last_step,
                "age_s": None if s.age_s is None else round(s.age_s, 3),
                "best_lfw_accuracy": s.best_accuracy,
                "best_lfw_accuracy_step": s.best_accuracy_step,
                "steps_per_s": s.steps_per_s,
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
    return {"logdir": str(logdir), "runs": runs, "alerts": warnings}


def render_table(logdir: Path, summaries: list[model.RunSummary], out: TextIO) -> None:
    """A Rich table (plain text off a terminal) fitting 80 columns, then one line per alert."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, width=None if out.isatty() else 100, highlight=False)
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
            s.name,
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
            console.print(f"{a.severity}: {s.name}: {a.message}")
        if s.corrupt_records:
            console.print(f"note: {s.name}: {s.corrupt_records} corrupt record(s) skipped")


def print_once(logdir: Path, *, as_json_output: bool, out: TextIO | None = None) -> int:
    """Print every run's latest values; returns ``EXIT_ALERT`` when a warning is active."""
    out = sys.stdout if out is None else out
    summaries = read_summaries(logdir)
    if as_json_output:
        out.write(json.dumps(as_json(logdir, summaries), indent=2) + "\n")
    else:
        render_table(logdir, summaries, out)
    return EXIT_ALERT if any(s.warnings for s in summaries) else 0
