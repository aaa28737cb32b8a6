"""``facenet align``: the entry point and the demo photos' alignment.

The job is split by role: ``inputs`` lists what to align, ``worker`` detects and writes crops,
``coordinator`` plans the chunks, runs the workers and keeps the journal.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from facenet_cli.align.coordinator import (
    BOX_FILE,
    FAILURES_FILE,
    JOURNAL_FILE,
    AlignSummary,
    align_dataset,
    auto_workers,
    settings_of,
)
from facenet_cli.align.inputs import AlignInput, in_shard, list_inputs, parse_shard
from facenet_cli.config import AlignConfig
from facenet_cli.errors import InputError

if TYPE_CHECKING:
    from facenet_cli.data.demo_faces import DemoPaths

__all__ = [
    "BOX_FILE",
    "FAILURES_FILE",
    "JOURNAL_FILE",
    "AlignInput",
    "AlignSummary",
    "align_dataset",
    "auto_workers",
    "ensure_demo_aligned",
    "in_shard",
    "list_inputs",
    "parse_shard",
    "run_align",
    "settings_of",
]


def run_align(config: AlignConfig, *, quiet: bool = False) -> AlignSummary:
    """Align a dataset (or, with no input folder, both splits of the demo photos).

    Args:
        config: the ``align`` options.
        quiet: no progress bar or summary table.

    Returns:
        The run's summary (for the demo: both splits added up).

    Raises:
        InputError: bad input folder, bad ``--shard`` or ``--mode``, or an output folder
            aligned with other settings.
        FacenetError: a worker process failed.
    """
    if config.input_dir is None:
        from facenet_cli.data.demo_faces import DEMO_IMAGE_SIZE, DEMO_MARGIN, build_demo_photos

        paths = build_demo_photos()
        # The demo folders feed `train` and `validate`: only options that do not change the
        # output carry over; sizes are the demo's own.
        keep = ("workers", "batch_size", "random_order", "gpu_memory_fraction")
        base = {k: v for k, v in asdict(config).items() if k in keep}
        base.update(image_size=DEMO_IMAGE_SIZE, margin=DEMO_MARGIN)
        parts = [
            align_dataset(AlignConfig(**{**base, "input_dir": src, "output_dir": dst}), quiet=quiet)
            for src, dst in (
                (paths.raw_train, paths.aligned_train),
                (paths.raw_test, paths.aligned_test),
            )
        ]
        failures: Counter[str] = Counter()
        for p in parts:
            failures.update(p.failures)
        return AlignSummary(
            input_dir=paths.raw_train.parent,
            output_dir=paths.aligned_train.parent,
            total=sum(p.total for p in parts),
            skipped=sum(p.skipped for p in parts),
            processed=sum(p.processed for p in parts),
            aligned=sum(p.aligned for p in parts),
            faces=sum(p.faces for p in parts),
            failures=dict(failures),
            seconds=sum(p.seconds for p in parts),
        )
    if config.output_dir is None:
        raise InputError("facenet align INPUT_DIR OUTPUT_DIR: OUTPUT_DIR is missing")
    return align_dataset(config, quiet=quiet)


def ensure_demo_aligned(root: Path | None = None, *, quiet: bool = False) -> DemoPaths:
    """Build the demo photos when missing and align both splits at 160 px / margin 32.

    Resumable, and cheap when already done (no TensorFlow is loaded then). Waits when another
    process is aligning the same demo folder. Shows a progress bar only when there is work.
    """
    from facenet_cli.data.demo_faces import DEMO_IMAGE_SIZE, DEMO_MARGIN, build_demo_photos

    paths = build_demo_photos(root)
    for src, dst in ((paths.raw_train, paths.aligned_train), (paths.raw_test, paths.aligned_test)):
        align_dataset(
            AlignConfig(
                input_dir=src, output_dir=dst, image_size=DEMO_IMAGE_SIZE, margin=DEMO_MARGIN
            ),
            quiet=quiet,
            wait=True,
            show_summary=False,
        )
    return paths
