"""The validate job: ``facenet validate``.

It loads a model, reconciles the command-line options with the model's ``model.json``, embeds
the images of the pairs file through ``evaluate_on_pairs`` (``pairs_embedding.py``) and prints the
results.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.evaluate.pairs_embedding import (
    CROP_CACHE_BYTES,
    CropCache,
    EmbedFn,
    ValidationReport,
    embed_paths,
    evaluate_on_pairs,
)

if TYPE_CHECKING:
    from facenet_cli.config import ValidateConfig

__all__ = [
    "CROP_CACHE_BYTES",
    "CropCache",
    "EmbedFn",
    "ValidationReport",
    "embed_paths",
    "evaluate_on_pairs",
    "configure_embedding",
    "run_validate",
    "uses_benchmarks",
]


def uses_benchmarks(config: ValidateConfig) -> bool:
    """Whether the command line asks for the benchmark job (``benchmark_job.run_benchmarks``):
    ``--benchmark``, ``--all-checkpoints``, ``--worst``, or a verification pack as the data."""
    from facenet_cli.data.verification_pack import is_pack_file

    return bool(
        config.benchmark
        or config.all_checkpoints
        or config.worst
        or config.worst_png is not None
        or (config.lfw_dir is not None and is_pack_file(config.lfw_dir))
    )


# ------------------------------------------------------------------------------------ the job


def _resolve_inputs(config: ValidateConfig) -> tuple[Path, Path, Path]:
    """LFW folder, model and pairs file.

    Without ``--lfw-pairs``: ``pairs.txt`` in LFW_DIR or beside it, else the LFW pairs file the
    package ships.
    """
    from facenet_cli.data.pairs_file import find_pairs_file

    if config.lfw_dir is None or config.model is None:
        raise InputError("validate needs both LFW_DIR and MODEL")
    lfw_dir = Path(config.lfw_dir)
    if not lfw_dir.is_dir():
        raise InputError(f"{lfw_dir}: image directory not found")
    pairs = config.lfw_pairs if config.lfw_pairs is not None else find_pairs_file(lfw_dir)
    return lfw_dir, Path(config.model), Path(pairs)


def configure_embedding(model: Any, config: ValidateConfig) -> tuple[EmbedFn, int, list[str]]:
    """The embedding function and crop size: the model's sidecar, unless a flag says otherwise.

    Returns:
        ``(embed, crop_size, warnings)``.
    """
    import tensorflow as tf

    from facenet_cli.config import resolve_xla

    info = model.info
    notes: list[str] = []
    xla = resolve_xla(config.xla, bool(tf.config.list_logical_devices("GPU")))
    embed: EmbedFn = model.embedder(xla=xla)
    wanted = config.use_fixed_image_standardization
    if wanted is not None:
        mode = "fixed" if wanted else "per_image"
        if mode != info.standardization:
            flag = "--" + ("" if wanted else "no-") + "use-fixed-image-standardization"
            if model.keras_model is not None:
                from facenet_cli.models.loading import embedding_fn

                notes.append(
                    f"{flag} overrides the model's own standardisation "
                    f"({info.standardization!r} in model.json)"
                )
                embed = embedding_fn(
                    model.keras_model, dataclasses.replace(info, standardization=mode), xla=xla
                )
            else:
                notes.append(
                    f"{flag} ignored: this SavedModel applies its own standardisation "
                    f"({info.standardization!r} in model.json)"
                )
    crop = config.image_size or info.image_size
    if crop != info.image_size:
        notes.append(
            f"--image-size {crop} differs from the model's input size {info.image_size} "
            f"(model.json): images are centre-cropped to {crop} px, then resized to "
            f"{info.image_size} px"
        )
        embed = _resizing(embed, info.image_size)
    return embed, crop, notes


def _resizing(embed: EmbedFn, size: int) -> EmbedFn:
    import tensorflow as tf

    def resized(images: np.ndarray) -> np.ndarray:
        return embed(tf.image.resize(images, (size, size)).numpy())

    return resized


def run_validate(config: ValidateConfig) -> ValidationReport:
    """``facenet validate``: load MODEL, run the protocol on LFW_DIR's pairs, print the result.

    Raises:
        InputError: a missing folder, model or pairs file, a missing image with ``--strict``,
            or an unreadable image.
    """
    from facenet_cli.data.dataset import non_image_note
    from facenet_cli.data.pairs_file import protocol_folds
    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.progress import console, progress_bars

    lfw_dir, model_path, pairs_path = _resolve_inputs(config)
    if (note := non_image_note(lfw_dir)) is not None:
        console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)
    model = load_embedding_model(model_path)
    embed, crop, notes = configure_embedding(model, config)
    for note in notes:
        console.print(f"[yellow]warning:[/] {note}", highlight=False, soft_wrap=True)

    with progress_bars("rate", transient=True) as progress:
        state: dict[str, Any] = {}

        def on_start(total: int) -> None:
            state.update(start=time.perf_counter(), done=0)
            state["task"] = progress.add_task("embedding", total=total, rate="")

        def on_batch(n: int) -> None:
            state["done"] += n
            elapsed = max(time.perf_counter() - state["start"], 1e-9)
            rate = f"{state['done'] / elapsed:.0f} img/s"
            progress.update(state["task"], advance=n, rate=rate)

        report = evaluate_on_pairs(
            embed,
            lfw_dir,
            pairs_path,
            image_size=crop,
            batch_size=config.lfw_batch_size,
            use_flipped_images=config.use_flipped_images,
            distance_metric=config.distance_metric,
            subtract_mean=config.subtract_mean,
            nrof_folds=protocol_folds(config.lfw_nrof_folds, pairs_path),
            far_target=config.far_target,
            strict=config.strict,
            on_start=on_start,
            on_batch=on_batch,
        )
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    recorded_in = None
    # A threshold measured with overridden preprocessing is not the model's.
    if config.record_threshold and not notes:
        from facenet_cli.evaluate.record import record_threshold, sidecar_of

        sidecar = sidecar_of(model)
        updated = record_threshold(sidecar, model.info, report,
                                   subtract_mean=config.subtract_mean, image_size=crop)  # fmt: skip
        if sidecar is not None and updated is not model.info:
            recorded_in = sidecar
    # The results first: a ROC file that cannot be written still fails the command (exit 6),
    # but after they are out.
    if config.json:
        data = report.to_dict()
        data["model"] = str(model_path)
        data["model_info"] = dataclasses.asdict(model.info)
        data["warnings"] = notes + data["warnings"]
        data["threshold_recorded_in"] = None if recorded_in is None else str(recorded_in)
        print(json.dumps(data, indent=2), flush=True)
    else:
        _print_report(report, model_path)
        if recorded_in is not None:
            console.print(
                f"threshold {report.result.threshold:g} recorded in {recorded_in} "
                "(compare and classify use it; --no-record-threshold leaves it)",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
    if config.roc is not None:
        _write_roc(config.roc, report, model_path)
    return report


def _write_roc(path: Path, report: ValidationReport, model_path: Path) -> None:
    from facenet_cli.evaluate.roc import write_roc_csv, write_roc_png

    r = report.result
    if Path(path).suffix.lower() == ".png":
        write_roc_png(path, r.fpr, r.tpr, title=Path(model_path).name, auc=r.auc, eer=r.eer)
    else:
        write_roc_csv(path, r.thresholds, r.fpr, r.tpr)


def _pm(mean: float, std: float, digits: int = 5) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _print_report(report: ValidationReport, model_path: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    from facenet_cli.evaluate.roc import terminal_roc

    r = report.result
    metric = "squared L2" if r.distance_metric == 0 else "angular"
    if r.nrof_unreachable_folds == r.nrof_folds:
        val = f"unreachable: no threshold gives FAR={r.far_target:.5f}"
    else:
        val = f"{_pm(r.val_mean, r.val_std)} @ FAR={r.far_mean:.5f}"
        if r.nrof_unreachable_folds:
            val += f" ({r.nrof_folds - r.nrof_unreachable_folds} of {r.nrof_folds} folds)"
    table = Table(
        title=f"{Path(model_path).name}: {report.nrof_pairs_used} pairs, {r.nrof_folds} folds",
        show_header=False,
        title_justify="left",
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Accuracy", _pm(r.accuracy_mean, r.accuracy_std))
    table.add_row("Validation rate", val)
    table.add_row("Area Under Curve (AUC)", f"{r.auc:.3f}")
    table.add_row("Equal Error Rate (EER)", f"{r.eer:.3f}")
    table.add_row("Threshold", f"{_pm(r.threshold, r.threshold_std, 2)} ({metric})")
    out = Console(highlight=False)
    out.print(table)
    out.print(
        f"{report.nrof_images} images ({report.images_per_second:.0f} img/s"
        f"{', with flips' if report.use_flipped_images else ''}) from {report.lfw_dir}"
    )
    out.print(terminal_roc(r.fpr, r.tpr), markup=False)
