"""TFLite embedding models (``.tflite``): LiteRT's interpreter, else TensorFlow's own.

This package's TFLite exports take preprocessed images ``(N, S, S, 3)`` and return L2-normalised
embeddings; the preprocessing is in the sidecar beside them. Quantised inputs and outputs (a
full-integer model) are quantised and dequantised here with the model's own scale and zero point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.models.embedding_model import (
    EmbeddingModel,
    batched,
    first_line,
    l2_normalised,
    preprocess_tensor,
)
from facenet_cli.models.sidecar import ModelInfo, read_model_info, sidecar_near

TFLITE_MODEL_DEF = "tflite"
TFLITE_BATCH = 32


def interpreter_class() -> Any:
    """LiteRT's Interpreter when installed (the ``tflite`` extra), else ``tf.lite``'s."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        return tf.lite.Interpreter
    return Interpreter


def load_tflite_model(path: str | Path) -> EmbeddingModel:
    """Load a TFLite embedding model as an ``EmbeddingModel``.

    Raises:
        InputError: the file is not a loadable TFLite model or its input is not an image batch.
    """
    path = Path(path)
    try:
        interpreter = interpreter_class()(model_path=str(path))
        interpreter.allocate_tensors()
    except Exception as exc:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError
        raise InputError(f"{path}: not a loadable TFLite model ({first_line(exc)})") from None
    (spec,) = interpreter.get_input_details()[:1]
    shape = [int(d) for d in spec["shape"]]
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        raise InputError(f"{path}: the input has shape {shape}; expected (N, S, S, 3) images")
    out_index = interpreter.get_output_details()[0]["index"]
    state = {"batch": shape[0]}

    def quantise(x: np.ndarray, details: dict[str, Any]) -> np.ndarray:
        scale, zero = details["quantization"]
        if details["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(details["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        return x.astype(details["dtype"])

    def run(x: np.ndarray) -> np.ndarray:
        if state["batch"] != len(x):
            interpreter.resize_tensor_input(spec["index"], [len(x), *shape[1:]])
            interpreter.allocate_tensors()
            state["batch"] = len(x)
        interpreter.set_tensor(spec["index"], quantise(x, spec))
        interpreter.invoke()
        out = interpreter.get_tensor(out_index)
        details = interpreter.get_output_details()[0]
        scale, zero = details["quantization"]
        if details["dtype"] in (np.int8, np.uint8) and scale:
            return (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32)

    size = shape[1]
    embedding_size = int(run(np.zeros((1, size, size, 3), np.float32)).reshape(1, -1).shape[1])
    sidecar = sidecar_near(path)
    assumed = None
    if sidecar.exists():
        info = read_model_info(sidecar)
        if info.embedding_size != embedding_size or info.image_size != size:
            raise InputError(
                f"{path}: the model takes {size} px and gives {embedding_size}-d embeddings, "
                f"{sidecar} says {info.image_size} px, {info.embedding_size}-d"
            )
    else:
        info = ModelInfo(TFLITE_MODEL_DEF, embedding_size, size, "fixed")
        assumed = (
            f"{path}: no model.json, so fixed image standardisation is assumed; {size} px RGB; "
            "a model.json beside it sets another"
        )

    def embed(images: np.ndarray) -> np.ndarray:
        return l2_normalised(run(np.asarray(preprocess_tensor(info, images))))

    return EmbeddingModel(
        info, path, None, kind="tflite", handle=interpreter, assumed=assumed,
        _embed=batched(embed, info, TFLITE_BATCH),
    )  # fmt: skip
