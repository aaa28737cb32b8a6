"""``facenet demo``: the whole recipe on the built-in faces (see ``facenet_cli.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facenet_cli.commands import checks
from facenet_cli.config import DemoConfig, from_params

_DEMO = DemoConfig()


def register(app: typer.Typer) -> None:
    """Declare ``facenet demo`` on ``app``."""

    @app.command()
    def demo(
        ctx: typer.Context,
        minutes: Annotated[
            float,
            typer.Option(
                min=0.1,
                help="Training length: the steps a busy 2-core CPU trains in this many minutes "
                "(120 a minute with triplets, 200 with a classifier loss; a faster machine "
                "finishes sooner).",
                callback=checks.finite,
            ),
        ] = _DEMO.minutes,
        out: Annotated[
            Path | None,
            typer.Option(help="Working folder. Default: ~/.cache/facenet/demo."),
        ] = None,
        seed: Annotated[int, typer.Option()] = _DEMO.seed,
        loss: Annotated[
            str,
            typer.Option(
                help="triplet (the original's recipe), or softmax, arcface or cosface: the same "
                "model trained as a classifier of the demo's training people, which gives "
                "better embeddings for `facenet classify` (README, 'Which loss to pick').",
                callback=checks.loss,
            ),
        ] = _DEMO.loss,
        dry_run: Annotated[
            bool, typer.Option(help="Print the four commands the demo runs, and exit.")
        ] = False,
        json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    ) -> None:
        """Run the whole recipe (align, train, validate) on built-in real faces, in minutes."""
        from facenet_cli.demo.run import run_demo

        run_demo(from_params(DemoConfig, ctx.params))
