"""``facenet align``: MTCNN alignment of a dataset, or of the demo photos with no folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facenet_cli.config import AlignConfig, from_params

_ALIGN = AlignConfig()


def register(app: typer.Typer) -> None:
    """Declare ``facenet align`` on ``app``."""

    @app.command()
    def align(
        ctx: typer.Context,
        input_dir: Annotated[
            Path | None,
            typer.Argument(
                help="Dataset root: one sub-folder per identity. Default: the demo photos."
            ),
        ] = None,
        output_dir: Annotated[
            Path | None,
            typer.Argument(
                help="Where aligned crops go (same class folders). Default: demo cache."
            ),
        ] = None,
        image_size: Annotated[
            int, typer.Option(min=8, help="Side of the square output crop, px.")
        ] = (_ALIGN.image_size),
        margin: Annotated[
            int,
            typer.Option(min=0, help="Margin around the box in ORIGINAL pixels (half per side)."),
        ] = _ALIGN.margin,
        random_order: Annotated[
            bool,
            typer.Option(help="Process images in random order (the original's parallelism)."),
        ] = _ALIGN.random_order,
        detect_multiple_faces: Annotated[
            bool,
            typer.Option(help="Write every face (<stem>_<i>.png) instead of the most central one."),
        ] = _ALIGN.detect_multiple_faces,
        min_face_size: Annotated[int, typer.Option(min=4, help="MTCNN minimum face size, px.")] = (
            _ALIGN.min_face_size
        ),
        thresholds: Annotated[
            tuple[float, float, float],
            typer.Option(help="P-Net, R-Net, O-Net score thresholds."),
        ] = _ALIGN.thresholds,
        factor: Annotated[
            float, typer.Option(min=0.1, max=0.99, help="Image pyramid scale factor.")
        ] = _ALIGN.factor,
        workers: Annotated[
            int,
            typer.Option(
                min=0,
                help="Worker processes (0 = auto: one per 4 cores, one for small jobs; each uses "
                "its share of the cores for TensorFlow).",
            ),
        ] = _ALIGN.workers,
        shard: Annotated[
            str,
            typer.Option(
                help="I/N: process only shard I of N (0-based), a deterministic split of the "
                "inputs so N machines on shared storage can share one dataset."
            ),
        ] = _ALIGN.shard,
        gpu_memory_fraction: Annotated[
            float,
            typer.Option(min=0.0, max=1.0, help="Upper bound on GPU memory used (TF2: limit)."),
        ] = _ALIGN.gpu_memory_fraction,
        mode: Annotated[
            str,
            typer.Option(
                help="crop: box + margin (the original); similarity: 5-landmark similarity warp "
                "to a canonical face template."
            ),
        ] = _ALIGN.mode,
        batch_size: Annotated[int, typer.Option(min=1, help="Images detected together.")] = (
            _ALIGN.batch_size
        ),
    ) -> None:
        """Detect faces with MTCNN and write aligned crops of a whole dataset (resumable)."""
        config = from_params(AlignConfig, ctx.params)
        if input_dir is None:
            from facenet_cli.demo.data import align_demo

            align_demo(config)
            return
        from facenet_cli.align.pipeline import run_align

        run_align(config)
