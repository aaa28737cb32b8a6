"""Recording a validated threshold in the model's ``model.json``.

Evaluation (``facenet validate`` and the training run's pairs evaluation) stores the
accuracy-maximising threshold of its folds, with the distance metric and protocol it belongs to,
in the model's sidecar; ``compare`` and ``classify`` read it back (``use.threshold``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from facenet_cli.models.sidecar import SIDECAR_NAME, ModelInfo, with_threshold, write_model_info

if TYPE_CHECKING:
    from facenet_cli.evaluate.pairs_embedding import ValidationReport
    from facenet_cli.models.loading import EmbeddingModel


def protocol_text(report: ValidationReport) -> str:
    """One line naming what a threshold was measured on."""
    r = report.result
    where = report.pairs_path.name if report.pairs_path is not None else str(report.lfw_dir)
    return (
        f"{r.nrof_folds}-fold verification on {r.nrof_pairs} pairs of {where}, "
        f"accuracy {r.accuracy_mean:.3f}"
    )


def sidecar_of(model: EmbeddingModel) -> Path | None:
    """The ``model.json`` a loaded model was read with (None when it has none on disk)."""
    source = Path(model.source)
    if model.kind == "keras":
        candidates = [source.with_suffix(".json"), source.parent / SIDECAR_NAME]
    elif model.kind == "saved_model":
        candidates = [source / SIDECAR_NAME, source.parent / SIDECAR_NAME]
    else:
        candidates = [source.parent / SIDECAR_NAME]
    return next((c for c in candidates if c.is_file()), None)


def record_threshold(
    sidecar: Path | None,
    info: ModelInfo,
    report: ValidationReport,
    *,
    subtract_mean: bool = False,
    image_size: int | None = None,
) -> ModelInfo:
    """Store the report's accuracy-maximising threshold in the sidecar; return the new info.

    A threshold measured on flipped-and-concatenated embeddings, mean-subtracted embeddings or
    another crop size does not apply to a single plain embedding, so such a report is not
    recorded (``info`` comes back unchanged). A sidecar that cannot be written is left as it is:
    the threshold is an aid, and the evaluation's own results are already out.
    """
    crop = image_size if image_size is not None else info.image_size
    if report.use_flipped_images or subtract_mean or crop != info.image_size:
        return info
    updated = with_threshold(
        info, report.result.threshold, report.result.distance_metric, protocol_text(report)
    )
    if sidecar is not None:
        try:
            write_model_info(sidecar, updated)
        except OSError:
            return info
    return updated
