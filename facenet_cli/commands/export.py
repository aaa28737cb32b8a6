"""``facenet export``: SavedModel + ``.keras``, and on request a frozen .pb, ONNX and TFLite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The ``--to`` names, kept here so ``--help`` imports no TensorFlow; a test checks that they
# are the rows of ``models.export_formats.EXPORT_FORMATS``.
FORMAT_NAMES = ("pb", "onnx", "tflite", "tflite-fp16", "tflite-int8")


def _formats(values: list[str] | None) -> list[str]:
    names = [n.strip() for v in values or [] for n in v.split(",") if n.strip()]
    unknown = [n for n in names if n not in FORMAT_NAMES]
    if unknown:
        raise typer.BadParameter(
            f"unknown format {unknown[0]!r}; known: {', '.join(FORMAT_NAMES)}", param_hint="--to"
        )
    return names


def export(
    source: Annotated[
        Path,
        typer.Argument(
            help="Run directory, checkpoint, export, .keras file, or a frozen .pb of the "
            "original's networks."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Output folder (SavedModel + .keras + sidecar).")],
    to: Annotated[
        list[str] | None,
        typer.Option(
            "--to",
            help="Also write this format (repeat, or comma-separate): pb (frozen graph, the "
            "original's input:0 / phase_train:0 / embeddings:0), onnx, tflite, tflite-fp16, "
            "tflite-int8. Each is loaded back and compared with the Keras model.",
        ),
    ] = None,
    representative: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            file_okay=False,
            help="Aligned face crops (any folder of images) that calibrate tflite-int8 and "
            "feed the parity checks. Default: synthetic images.",
        ),
    ] = None,
) -> None:
    """Export an embedding model (SavedModel, .keras; .pb, ONNX, TFLite with --to); check each."""
    from facenet_cli.models.export import run_export

    run_export(source, out, _formats(to), representative)


def register(app: typer.Typer) -> None:
    """Declare ``facenet export`` on ``app``."""
    app.command("export")(export)
