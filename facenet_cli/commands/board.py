"""``facenet board``: the live terminal dashboard (imports no TensorFlow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facenet_cli.config import BoardConfig, from_params

_BOARD = BoardConfig()


def register(app: typer.Typer) -> None:
    """Declare ``facenet board`` on ``app``."""

    @app.command()
    def board(
        ctx: typer.Context,
        logdir: Annotated[
            Path, typer.Argument(help="Log directory with one folder per run.")
        ] = _BOARD.logdir,
        once: Annotated[
            bool,
            typer.Option(help="Print the latest values of every run and exit (5 on alerts)."),
        ] = False,
        json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
        tensorboard: Annotated[
            bool,
            typer.Option(help="Also start TensorBoard on localhost and print its address."),
        ] = False,
        port: Annotated[
            int, typer.Option(min=1, max=65535, help="TensorBoard port.")
        ] = _BOARD.port,
        poll_interval: Annotated[float, typer.Option(min=0.05, help="Seconds between polls.")] = (
            _BOARD.poll_interval
        ),
    ) -> None:
        """Live terminal dashboard over training event files (no TensorFlow needed)."""
        from tui.app import run_board

        code = run_board(from_params(BoardConfig, ctx.params))
        if code:
            raise typer.Exit(code)
