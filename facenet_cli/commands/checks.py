"""Checks of option values that Typer's types cannot express, shared by the commands."""

from __future__ import annotations

import math
from pathlib import Path

import typer


def distance(value: float | None) -> float | None:
    """A distance threshold: finite and not negative (None: the default)."""
    if value is not None and not (math.isfinite(value) and value >= 0.0):
        raise typer.BadParameter(f"{value} is not a distance (a finite number >= 0)")
    return value


def out_file(value: Path | None) -> Path | None:
    """A file to write: it needs a name (``--out ''`` or ``--out .`` has none)."""
    if value is not None and value.name in ("", ".", ".."):
        raise typer.BadParameter(f"{str(value)!r} is not a file name")
    return value


def loss(value: str | None) -> str | None:
    """A training loss: one of ``LOSSES`` (None: the default)."""
    from facenet_cli.config import LOSSES

    if value is not None and value not in LOSSES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LOSSES)}")
    return value
