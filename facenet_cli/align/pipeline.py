"""``facenet align``: the entry point.

The job is split by role: ``inputs`` lists what to align, ``worker`` detects and writes crops,
``coordinator`` plans the chunks, runs the workers and keeps the journal.
"""

from __future__ import annotations

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

__all__ = [
    "BOX_FILE",
    "FAILURES_FILE",
    "JOURNAL_FILE",
    "AlignInput",
    "AlignSummary",
    "align_dataset",
    "auto_workers",
    "in_shard",
    "list_inputs",
    "parse_shard",
    "run_align",
    "settings_of",
]


def run_align(config: AlignConfig, *, quiet: bool = False) -> AlignSummary:
    """Align a dataset.

    Args:
        config: the ``align`` options.
        quiet: no progress bar or summary table.

    Returns:
        The run's summary.

    Raises:
        InputError: bad input folder, bad ``--shard`` or ``--mode``, or an output folder
            aligned with other settings.
        FacenetError: a worker process failed.
    """
    if config.input_dir is None:
        raise InputError("facenet align INPUT_DIR OUTPUT_DIR: INPUT_DIR is missing")
    if config.output_dir is None:
        raise InputError("facenet align INPUT_DIR OUTPUT_DIR: OUTPUT_DIR is missing")
    return align_dataset(config, quiet=quiet)
