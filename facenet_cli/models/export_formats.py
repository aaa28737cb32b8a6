"""Exports other tools read: a frozen ``.pb`` in the original's layout, ONNX and TFLite.

Each format is one row of ``EXPORT_FORMATS``. Every exported file holds the network from
preprocessed images to L2-normalised embeddings (``embedding_model.network_tensor``), takes
``(N, S, S, 3)`` float32 in the model's colour order, standardised as its sidecar says, and has
that sidecar beside it as ``<stem>.json``; so each one loads back through ``load_embedding_model``
and is validated like any model. ``write_format`` loads the file back and measures it against
the in-memory Keras model.

    model.pb            frozen GraphDef: input:0, phase_train:0 (ignored), embeddings:0
    model.onnx          ONNX (tf2onnx, from the frozen graph), input ``input:0``, NHWC
    model.tflite        TFLite float32
    model-fp16.tflite   TFLite with float16 weights
    model-int8.tflite   TFLite with int8 weights and activations (float32 in and out),
                        calibrated on a representative set of faces
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import FacenetError
from facenet_cli.models.embedding_model import embedding_fn, network_tensor, preprocess_tensor
from facenet_cli.models.onnx_model import MissingExtraError
from facenet_cli.models.sidecar import ModelInfo, write_model_info

ONNX_OPSET = 17


class ExportParityError(FacenetError):
    """An exported file's embeddings differ from the in-memory model's beyond its tolerance."""


@dataclass(frozen=True)
class ExportFormat:
    """One file format ``facenet export --to NAME`` writes.

    Attributes:
        name: the ``--to`` value.
        file_name: the file written in the export folder.
        write: ``(keras_model, info, path, representative)`` -> None.
        tolerance: the largest max-abs embedding difference accepted on reload.
        what: one line for ``--help``.
    """

    name: str
    file_name: str
    write: Callable[[Any, ModelInfo, Path, np.ndarray | None], None]
    tolerance: float
    what: str


def _network_function(keras_model: Any, info: ModelInfo, batch: int | None = None) -> Any:
    """The concrete function ``(input, phase_train) -> embeddings`` that every format holds."""
    import tensorflow as tf

    shape = (batch, info.image_size, info.image_size, 3)

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape, tf.float32, name="input"),
            tf.TensorSpec((), tf.bool, name="phase_train"),
        ]
    )
    def network(images: Any, phase_train: Any) -> Any:
        del phase_train  # kept for the original's feed dicts; the export is inference-only
        return network_tensor(keras_model, info, images)

    return network.get_concrete_function()


def frozen_graph_def(keras_model: Any, info: ModelInfo) -> Any:
    """The network as a frozen ``GraphDef`` with the original's tensor names.

    ``input:0`` (standardised images), ``phase_train:0`` (a bool the original's scripts feed;
    the graph ignores it) and ``embeddings:0`` (L2-normalised), as ``facenet.load_model`` and
    the tools built on the original expect.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(_network_function(keras_model, info))
    graph_def = frozen.graph.as_graph_def()
    output = frozen.outputs[0].name.split(":")[0]
    node = graph_def.node.add()
    node.name = "embeddings"
    node.op = "Identity"
    node.input.append(output)
    node.attr["T"].type = tf.float32.as_datatype_enum
    names = {n.name for n in graph_def.node}
    if "phase_train" not in names:  # freezing dropped the unused placeholder: put it back
        placeholder = graph_def.node.add()
        placeholder.name = "phase_train"
        placeholder.op = "Placeholder"
        placeholder.attr["dtype"].type = tf.bool.as_datatype_enum
    return graph_def


def write_pb(keras_model: Any, info: ModelInfo, path: Path, _: np.ndarray | None) -> None:
    """Write the frozen graph (``frozen_graph_def``)."""
    path.write_bytes(frozen_graph_def(keras_model, info).SerializeToString())


def write_onnx(keras_model: Any, info: ModelInfo, path: Path, _: np.ndarray | None) -> None:
    """Convert the frozen graph to ONNX with tf2onnx (the ``onnx`` extra)."""
    try:
        import tf2onnx
    except ImportError:
        raise MissingExtraError(
            "ONNX export needs tf2onnx: pip install -e '.[onnx]' (or pip install tf2onnx onnx)"
        ) from None
    import logging

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    tf2onnx.convert.from_graph_def(
        frozen_graph_def(keras_model, info),
        input_names=["input:0"],
        output_names=["embeddings:0"],
        opset=ONNX_OPSET,
        output_path=str(path),
    )


def _tflite(quantization: str) -> Callable[[Any, ModelInfo, Path, np.ndarray | None], None]:
    def write(keras_model: Any, info: ModelInfo, path: Path, faces: np.ndarray | None) -> None:
        import tensorflow as tf

        converter = tf.lite.TFLiteConverter.from_concrete_functions(
            [_tflite_function(keras_model, info)], keras_model
        )
        if quantization == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "int8":
            if faces is None or len(faces) == 0:
                raise FacenetError("int8 TFLite export needs representative faces")
            standardised = np.asarray(preprocess_tensor(info, faces), np.float32)

            def representative() -> Any:
                for image in standardised:
                    yield [image[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
        path.write_bytes(converter.convert())

    return write


def _tflite_function(keras_model: Any, info: ModelInfo) -> Any:
    """One image a call (TFLite resizes the batch at run time), preprocessed images in."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    spec = tf.TensorSpec((1, info.image_size, info.image_size, 3), tf.float32, name="input")

    @tf.function(input_signature=[spec])
    def network(images: Any) -> Any:
        return network_tensor(keras_model, info, images)

    # Frozen first: the converter keeps Keras 3's resource variables as READ_VARIABLE ops
    # that the interpreter then reads uninitialised (NaN embeddings).
    return convert_variables_to_constants_v2(network.get_concrete_function())


EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("pb", "model.pb", write_pb, 1e-5,
                 "frozen TF1 graph, the original's layout (input:0, phase_train:0, embeddings:0)"),
    ExportFormat("onnx", "model.onnx", write_onnx, 1e-4, "ONNX (onnxruntime, NHWC)"),
    ExportFormat("tflite", "model.tflite", _tflite("fp32"), 1e-4, "TFLite float32"),
    ExportFormat("tflite-fp16", "model-fp16.tflite", _tflite("fp16"), 5e-3,
                 "TFLite with float16 weights"),
    ExportFormat("tflite-int8", "model-int8.tflite", _tflite("int8"), 0.25,
                 "TFLite int8 (calibrated on --representative faces)"),
)  # fmt: skip


def export_format(name: str) -> ExportFormat:
    """The row named ``name``.

    Raises:
        FacenetError: an unknown name; the message lists the known ones.
    """
    for form in EXPORT_FORMATS:
        if form.name == name:
            return form
    known = ", ".join(f.name for f in EXPORT_FORMATS)
    raise FacenetError(f"unknown export format {name!r}; known: {known}")


def write_format(
    form: ExportFormat,
    keras_model: Any,
    info: ModelInfo,
    out_dir: Path,
    images: np.ndarray,
    representative: np.ndarray | None = None,
) -> tuple[Path, float]:
    """Write one format into ``out_dir`` with its sidecar, load it back and measure it.

    Args:
        images: raw pixels the reloaded file and the Keras model both embed.
        representative: raw-pixel faces for int8 calibration (default: ``images``).

    Returns:
        ``(path, max abs embedding difference against keras_model)``.

    Raises:
        ExportParityError: the difference exceeds the format's tolerance (the file is removed).
    """
    from facenet_cli.models.loading import load_embedding_model

    path = Path(out_dir) / form.file_name
    faces = images if representative is None else representative
    form.write(keras_model, info, path, faces)
    write_model_info(path.with_suffix(".json"), info)
    reference = embedding_fn(keras_model, info)(images)
    diff = float(np.max(np.abs(load_embedding_model(path).embed(images) - reference)))
    if not diff <= form.tolerance:
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        raise ExportParityError(
            f"{path}: the reloaded {form.name} export differs from the Keras model by "
            f"{diff:.3g} (> {form.tolerance:g})"
        )
    return path, diff
