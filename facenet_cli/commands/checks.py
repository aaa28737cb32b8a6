"""Checks of option values that Typer's types cannot express, shared by the commands."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer


def distance(value: float | None) -> float | None:
    """A distance threshold: finite and not negative (None: the default)."""
    if value is not None and not (math.isfinite(value) and value >= 0.0):
        raise typer.BadParameter(f"{value} is not a distance (a finite number >= 0)")
    return value


def finite(value: float | None) -> float | None:
    """A number that is neither nan nor infinite (None: the default)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


def out_file(value: Path | None) -> Path | None:
    """A file to write: it needs a name (``--out ''`` or ``--out .`` has none)."""
    if value is not None and value.name in ("", ".", ".."):
        raise typer.BadParameter(f"{str(value)!r} is not a file name")
    return value


def _losses() -> Sequence[str]:
    from facenet_cli.train.registry import loss_names

    return loss_names()


def one_of(choices: Callable[[], Sequence[str]], *, upper: bool = False) -> Callable[..., Any]:
    """A callback accepting the values ``choices()`` lists (read when a value is given, so that
    the list stays in the module that uses it; ``upper``: compared in upper case)."""

    def check(value: str | None) -> str | None:
        if value is not None:
            known = choices()
            if (value.strip().upper() if upper else value) not in known:
                raise typer.BadParameter(f"{value!r} is not one of {', '.join(known)}")
        return value

    return check


loss = one_of(_losses)
