"""ONNX embedding models (``.onnx``), run with onnxruntime (the optional ``onnx`` extra).

Takes the models the insightface world ships (ArcFace ``w600k_r50.onnx`` and the like: one image
input, NCHW or NHWC, 112 px) as well as this package's own ONNX exports. The input layout and
size are read from the model; the preprocessing from a sidecar beside it (``<stem>.json`` or
``model.json``), else fixed standardisation, stated in ``EmbeddingModel.assumed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import FacenetError, InputError
from facenet_cli.models.embedding_model import (
    EmbeddingModel,
    batched,
    first_line,
    l2_normalised,
    preprocess_tensor,
)
from facenet_cli.models.sidecar import ModelInfo, read_model_info, sidecar_near

ONNX_MODEL_DEF = "onnx"  # model_def of an ONNX model without a sidecar
DEFAULT_IMAGE_SIZE = 112  # insightface's recognition models, when the model leaves it open
ONNX_BATCH = 32
_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class MissingExtraError(FacenetError):
    """An optional dependency of one model format is not installed."""


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a one-line error saying what to install."""
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(
            "ONNX models need onnxruntime: pip install -e '.[onnx]' (or pip install onnxruntime)"
        ) from None
    return onnxruntime


def _layout(path: Path, shape: list[Any]) -> tuple[str, int | None]:
    """``("NCHW" | "NHWC", image_size or None)`` of a 4-D image input."""
    if len(shape) == 4 and shape[1] == 3 and shape[3] != 3:
        size = shape[2]
        layout = "NCHW"
    elif len(shape) == 4 and shape[3] == 3:
        size = shape[1]
        layout = "NHWC"
    else:
        raise InputError(
            f"{path}: the input has shape {shape}; expected images (N, 3, H, W) or (N, H, W, 3)"
        )
    return layout, size if isinstance(size, int) else None


def load_onnx_model(path: str | Path) -> EmbeddingModel:
    """Load an ONNX embedding model as an ``EmbeddingModel`` (onnxruntime, CPU).

    Raises:
        MissingExtraError: onnxruntime is not installed.
        InputError: the file is not a loadable ONNX model, or its input is not one image batch.
    """
    path = Path(path)
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # its warnings about unused initializers are not the user's
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
        raise InputError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise InputError(f"{path}: the model has {len(inputs)} inputs ({names}); expected one")
    spec = inputs[0]
    layout, size = _layout(path, list(spec.shape))
    dtype = _DTYPES.get(spec.type)
    if dtype is None:
        raise InputError(f"{path}: input {spec.name} is {spec.type}; expected float images")
    one_at_a_time = spec.shape[0] == 1
    output = session.get_outputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        if layout == "NCHW":
            x = np.transpose(x, (0, 3, 1, 2))
        x = np.ascontiguousarray(x, dtype=dtype)
        if one_at_a_time:
            parts = [session.run([output], {spec.name: x[i : i + 1]})[0] for i in range(len(x))]
            return np.concatenate(parts).astype(np.float32)
        return np.asarray(session.run([output], {spec.name: x})[0], np.float32)

    image_size = size or DEFAULT_IMAGE_SIZE
    probe = run(np.zeros((1, image_size, image_size, 3), np.float32))
    embedding_size = int(probe.reshape(1, -1).shape[1])
    sidecar = sidecar_near(path)
    assumed = None
    if sidecar.exists():
        info = read_model_info(sidecar)
        if info.embedding_size != embedding_size or (size and info.image_size != size):
            raise InputError(
                f"{path}: the model takes {image_size} px and gives {embedding_size}-d "
                f"embeddings, {sidecar} says {info.image_size} px, {info.embedding_size}-d"
            )
    else:
        info = ModelInfo(ONNX_MODEL_DEF, embedding_size, image_size, "fixed")
        assumed = (
            f"{path}: no model.json, so fixed image standardisation ((x - 127.5) / 128; "
            f"insightface's models divide by 127.5, 0.4 % apart) is assumed; {image_size} px "
            f"RGB, {layout}; a model.json beside it sets another"
        )
    return EmbeddingModel(
        info, path, None, kind="onnx", handle=session, assumed=assumed,
        _embed=batched(lambda images: l2_normalised(run(_preprocess(info, images))), info,
                       ONNX_BATCH),
    )  # fmt: skip


def _preprocess(info: ModelInfo, images: np.ndarray) -> np.ndarray:
    return np.asarray(preprocess_tensor(info, images))
