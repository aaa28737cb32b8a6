"""``model.json``: the preprocessing a model expects, written beside every run and export."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError

SIDECAR_NAME = "model.json"
STANDARDIZATIONS = ("per_image", "fixed", "none")
COLOR_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class ModelInfo:
    """What an embedding model is and which input it expects.

    Attributes:
        model_def: registry name of the architecture (``inception_resnet_v1``, ``small``, ...).
        embedding_size: length of the embedding.
        image_size: side of the square input in pixels.
        standardization: ``per_image`` (``tf.image.per_image_standardization``), ``fixed``
            (``(x - 127.5) / 128``) or ``none`` (float pixels 0..255).
        color_order: channel order the model was trained on, ``RGB`` or ``BGR``.
        keep_probability: dropout keep probability the model was built with.
        weight_decay: L2 weight decay the model was built with.
        align_image_size: side of the aligned crops the model was trained on (the crops are
            centre-cropped to ``image_size``); None when not recorded.
        align_margin: margin of those crops in original pixels; None when not recorded.
        align_mode: ``crop`` or ``similarity`` alignment; None when not recorded.
        threshold: the accuracy-maximising distance threshold of the last verification run
            (mean over its folds); None when the model was never evaluated.
        threshold_metric: the distance metric ``threshold`` belongs to (0 squared Euclidean,
            1 angular).
        threshold_protocol: what ``threshold`` was measured on (folds, pairs, accuracy).
        flip_fusion: the embedding of a face is the normalised sum of the embeddings of the
            face and of its mirror image (``facenet train --flip-fusion``); None or False: the
            plain embedding.
    """

    model_def: str
    embedding_size: int
    image_size: int
    standardization: str
    color_order: str = "RGB"
    keep_probability: float = 1.0
    weight_decay: float = 0.0
    align_image_size: int | None = None
    align_margin: int | None = None
    align_mode: str | None = None
    threshold: float | None = None
    threshold_metric: int | None = None
    threshold_protocol: str | None = None
    flip_fusion: bool | None = None

    def __post_init__(self) -> None:
        if self.standardization not in STANDARDIZATIONS:
            raise ValueError(
                f"standardization must be one of {STANDARDIZATIONS}, not {self.standardization!r}"
            )
        if self.color_order not in COLOR_ORDERS:
            raise ValueError(f"color_order must be one of {COLOR_ORDERS}, not {self.color_order!r}")
        if self.embedding_size < 1 or self.image_size < 1:
            raise ValueError("embedding_size and image_size must be positive")
        if self.threshold is not None and self.threshold_metric not in (0, 1):
            raise ValueError("a threshold needs its threshold_metric, 0 or 1")

    def build_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild the architecture with ``create_model``."""
        return {
            "embedding_size": self.embedding_size,
            "image_size": self.image_size,
            "keep_probability": self.keep_probability,
            "weight_decay": self.weight_decay,
        }


def with_threshold(
    info: ModelInfo, threshold: float, distance_metric: int, protocol: str
) -> ModelInfo:
    """``info`` with a verification threshold and the metric and protocol it belongs to."""
    return replace(
        info,
        threshold=round(float(threshold), 6),  # the grid's value, without float noise
        threshold_metric=int(distance_metric),
        threshold_protocol=protocol,
    )


def sidecar_path(path: Path) -> Path:
    """``path`` itself when it names a file, else ``path / model.json``."""
    path = Path(path)
    return path if path.suffix == ".json" else path / SIDECAR_NAME


def sidecar_near(model_file: Path) -> Path:
    """The sidecar of a model file: ``<stem>.json`` beside it, else the folder's ``model.json``."""
    model_file = Path(model_file)
    own = model_file.with_suffix(".json")
    return own if own.exists() else model_file.parent / SIDECAR_NAME


def write_model_info(path: Path, info: ModelInfo) -> Path:
    """Write ``info`` as JSON to ``path`` (a ``.json`` file or a folder that gets ``model.json``).

    Returns:
        The file written.
    """
    target = sidecar_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Fields not recorded are left out, so older readers see the file they know.
    data = {k: v for k, v in asdict(info).items() if v is not None}
    # Written beside and renamed: a sidecar rewritten with a new threshold is never half there.
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return target


def read_model_info(path: Path) -> ModelInfo:
    """Read a ``model.json`` (or the one inside the folder ``path``).

    Unknown keys are ignored so that newer files stay readable.

    Raises:
        InputError: the file is missing, is not JSON, or lacks a required field.
    """
    target = sidecar_path(path)
    try:
        data = json.loads(target.read_text())
    except FileNotFoundError:
        raise InputError(f"{target}: model sidecar not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{target}: not a readable JSON model sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{target}: expected a JSON object")
    known = {f.name for f in fields(ModelInfo)}
    missing = [name for name in ("model_def", "embedding_size", "image_size", "standardization")
               if name not in data]  # fmt: skip
    if missing:
        raise InputError(f"{target}: missing field(s) {', '.join(missing)}")
    try:
        return ModelInfo(**{k: v for k, v in data.items() if k in known})
    except (TypeError, ValueError) as exc:
        raise InputError(f"{target}: {exc}") from None
