"""The demo's data: the photos built from the built-in faces, both splits aligned, its runs.

What a command with no data arguments works on: ``facenet align`` aligns the demo photos,
``facenet train`` trains on them (``prepare``), ``facenet validate`` takes the newest demo run.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from facenet_cli.align.pipeline import AlignSummary
from facenet_cli.config import AlignConfig, ValidateConfig, default_models_dir
from facenet_cli.data.demo_faces import DemoPaths, demo_paths
from facenet_cli.demo.settings import align_config, fill_train_params, models_dir
from facenet_cli.errors import InputError

# Options of ``facenet align`` that do not change the crops: the demo's splits keep them.
ALIGN_CARRIED = ("workers", "batch_size", "random_order", "gpu_memory_fraction")


def build_photos(root: Path | None = None, *, quiet: bool = False) -> DemoPaths:
    """Build the demo photos unless built, with a progress bar when there is work."""
    from facenet_cli.data.demo_faces import build_demo_photos, demo_photos_ready
    from facenet_cli.progress import progress_bars

    paths = demo_paths(root)
    if quiet or demo_photos_ready(paths.root):
        return build_demo_photos(paths.root)
    with progress_bars(transient=True) as progress:
        task = progress.add_task("photos", total=None)

        def on_photo(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return build_demo_photos(paths.root, on_photo=on_photo)


def splits(paths: DemoPaths) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    """``(raw, aligned)`` folders of the training and the held-out split."""
    return (paths.raw_train, paths.aligned_train), (paths.raw_test, paths.aligned_test)


def prepare(root: Path | None = None, *, quiet: bool = False) -> DemoPaths:
    """Build the demo photos when missing and align both splits at the demo's settings.

    Resumable, and cheap when already done (no TensorFlow is loaded then). Waits when another
    process is aligning the same demo folder. Shows a progress bar only when there is work.
    """
    from facenet_cli.align.pipeline import align_dataset

    paths = build_photos(root, quiet=quiet)
    for source, target in splits(paths):
        align_dataset(align_config(source, target), quiet=quiet, wait=True, show_summary=False)
    return paths


def align_demo(config: AlignConfig, *, quiet: bool = False) -> AlignSummary:
    """``facenet align`` with no input folder: both splits of the demo photos.

    The demo folders feed ``train`` and ``validate``: only options that do not change the output
    carry over; sizes are the demo's own.

    Returns:
        Both splits' summaries added up.
    """
    from facenet_cli.align.pipeline import align_dataset

    paths = build_photos(quiet=quiet)
    carried = {name: getattr(config, name) for name in ALIGN_CARRIED}
    parts = [
        align_dataset(align_config(source, target, **carried), quiet=quiet)
        for source, target in splits(paths)
    ]
    failures: Counter[str] = Counter()
    for part in parts:
        failures.update(part.failures)
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


def newest_run(directory: Path) -> Path | None:
    """The run folder under ``directory`` whose newest file is the most recent."""
    if not directory.is_dir():
        return None
    best: tuple[float, Path] | None = None
    for run in directory.iterdir():
        if not run.is_dir():
            continue
        stamps = [p.stat().st_mtime for p in run.iterdir() if p.is_file()]
        if not stamps:
            continue
        if best is None or max(stamps) > best[0]:
            best = (max(stamps), run)
    return best[1] if best else None


def validate_config(config: ValidateConfig) -> ValidateConfig:
    """``facenet validate`` with no LFW_DIR and MODEL: the newest demo run on the held-out pairs.

    Raises:
        InputError: no demo run yet, or the held-out faces are not aligned.
    """
    paths = demo_paths()
    runs = models_dir(paths)
    run = newest_run(runs)
    if run is None:
        raise InputError(
            f"{runs}: no demo run to validate; train one with `facenet train` "
            "(or give LFW_DIR and MODEL)"
        )
    if not paths.aligned_test.is_dir():
        raise InputError(
            f"{paths.aligned_test}: demo test faces not aligned; run `facenet align` first"
        )
    return dataclasses.replace(
        config, lfw_dir=paths.aligned_test, model=run, lfw_pairs=config.lfw_pairs or paths.pairs
    )


def find_run(name: Path) -> Path | None:
    """The demo run named ``name`` (for ``facenet train --resume NAME``), if there is one."""
    candidate = models_dir(demo_paths()) / Path(name).name
    return candidate if candidate.is_dir() else None


def train_params(params: dict[str, Any]) -> dict[str, Any]:
    """``facenet train`` with no data: the demo data prepared, and the demo's settings for
    every option that was not given."""
    from facenet_cli.progress import console

    console.print("no --data-dir: training on the built-in demo faces", highlight=False)
    return fill_train_params(params, prepare())


def resume_dir(resume: Path) -> Path:
    """``--resume NAME`` with no ``--models-base-dir``: the default models folder's run of that
    name, else the demo's (else ``resume`` as given, for the library to report)."""
    if resume.is_dir() or (default_models_dir() / resume.name).is_dir():
        return resume
    return find_run(resume) or resume
