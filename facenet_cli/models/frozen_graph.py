"""Frozen TF1 graphs (``.pb``), as the original releases them, run under TensorFlow 2.

The original's released models hold ``<name>.pb``: a ``GraphDef`` whose variables were turned
into constants (``freeze_graph.py``: ``graph_util.convert_variables_to_constants``), fed with
standardised images at ``input:0`` and ``phase_train:0`` (False for inference), answering
L2-normalised embeddings at ``embeddings:0``. The graph is imported into a ``tf.function``
(``tf.compat.v1.wrap_function``) with ``phase_train`` mapped to a constant False and pruned
from ``input:0`` to ``embeddings:0``, so the queue ops of the training graph never run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.models.embedding_model import (
    EMBED_BATCH,
    EmbeddingModel,
    batched,
    preprocess_tensor,
)
from facenet_cli.models.sidecar import ModelInfo, read_model_info, sidecar_near

INPUT = "input:0"
PHASE_TRAIN = "phase_train:0"
EMBEDDINGS = "embeddings:0"
DEFAULT_IMAGE_SIZE = 160  # the released models' input, when the graph leaves it open
FROZEN_MODEL_DEF = "frozen_graph"  # model_def of a graph whose architecture is not recognised
_VARIABLE_OPS = {"Variable", "VariableV2", "VarHandleOp"}
_NOT_OUTPUTS = {"Const", "NoOp", "Assert", "SaveV2", "RestoreV2", "Placeholder"}
_CANDIDATES = 6  # names listed per kind in an error


def read_graph_def(path: Path) -> Any:
    """Parse a frozen ``GraphDef``.

    Raises:
        InputError: the file is unreadable, truncated, another protobuf, or still holds
            variables (not frozen); the message names the file and the problem.
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InputError(
            f"{path}: not a frozen TensorFlow graph (truncated or not a GraphDef: {exc})"
        ) from None
    if not graph_def.node:
        raise InputError(f"{path}: not a frozen TensorFlow graph (no nodes in it)")
    nameless = next((i for i, n in enumerate(graph_def.node) if not n.name or not n.op), None)
    if nameless is not None:
        raise InputError(
            f"{path}: not a frozen TensorFlow graph (node {nameless} has no name or op: "
            "another kind of protobuf)"
        )
    variables = [n.name for n in graph_def.node if n.op in _VARIABLE_OPS]
    if variables:
        raise InputError(
            f"{path}: the graph still holds {len(variables)} variables (e.g. {variables[0]}): "
            "not frozen; freeze it (the original's freeze_graph.py) or give the checkpoint"
        )
    return graph_def


def graph_candidates(graph_def: Any) -> tuple[list[str], list[str]]:
    """Tensors that could be a graph's input (placeholders) and output (unconsumed ops)."""
    consumed = {name.lstrip("^").split(":")[0] for n in graph_def.node for name in n.input}
    inputs = [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"]
    outputs = [
        f"{n.name}:0" for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS
    ]
    named = [f"{n.name}:0" for n in graph_def.node if "embedding" in n.name.lower()]
    return inputs, list(dict.fromkeys([*named, *outputs]))


def _listing(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(names[:_CANDIDATES]) or "none"
    return shown + (f" (+{len(names) - _CANDIDATES} more)" if len(names) > _CANDIDATES else "")


def _check_tensors(path: Path, graph_def: Any) -> bool:
    """Require ``input`` and ``embeddings``; return whether ``phase_train`` is there."""
    names = {n.name for n in graph_def.node}
    missing = [t for t in (INPUT, EMBEDDINGS) if t.split(":")[0] not in names]
    if missing:
        inputs, outputs = graph_candidates(graph_def)
        raise InputError(
            f"{path}: no {' or '.join(missing)} tensor, as the original's graphs have; "
            f"candidate inputs: {_listing(inputs)}; candidate outputs: {_listing(outputs)}"
        )
    return PHASE_TRAIN.split(":")[0] in names


def detect_graph_architecture(graph_def: Any) -> str | None:
    """The registry name of the original network whose constants the graph holds, if any."""
    from facenet_cli.models.tf1_import import TF1_ROOTS

    names = {n.name for n in graph_def.node if n.op == "Const"}
    return next(
        (
            model_def
            for model_def, root in TF1_ROOTS.items()
            if f"{root}/Bottleneck/weights" in names
        ),
        None,
    )


def import_graph(path: Path, graph_def: Any) -> Any:
    """The graph as a TF2 concrete function: standardised images -> embeddings.

    Raises:
        InputError: the tensors are missing (lists the candidates), or TensorFlow cannot
            import the graph (an op it does not know, a malformed node).
    """
    import tensorflow as tf

    has_phase_train = _check_tensors(path, graph_def)

    def imports() -> None:
        input_map = {PHASE_TRAIN: tf.constant(False)} if has_phase_train else None
        tf.compat.v1.import_graph_def(graph_def, input_map=input_map, name="")

    try:
        wrapped = tf.compat.v1.wrap_function(imports, [])
        graph = wrapped.graph
        return wrapped.prune(
            feeds=graph.get_tensor_by_name(INPUT), fetches=graph.get_tensor_by_name(EMBEDDINGS)
        )
    except (ValueError, TypeError, KeyError, tf.errors.OpError) as exc:
        text = str(exc).strip().splitlines()
        raise InputError(
            f"{path}: TensorFlow cannot import this graph ({text[0] if text else exc})"
        ) from None


def _graph_info(path: Path, graph_def: Any, forward: Any) -> tuple[ModelInfo, str | None]:
    """The model's sidecar when it has one, else one inferred (and the line saying so)."""
    from facenet_cli.models.tf1_import import assumed_preprocessing, original_standardization

    shape = forward.inputs[0].shape
    height = shape[1] if shape.rank == 4 else None
    image_size = int(height) if height is not None else DEFAULT_IMAGE_SIZE
    out = forward.outputs[0].shape
    if out.rank == 2 and out[1] is not None:
        embedding_size = int(out[1])
    else:  # a graph that leaves the size open: one zero image tells it
        zeros = np.zeros((1, image_size, image_size, 3), np.float32)
        embedding_size = int(np.asarray(forward(zeros)).shape[-1])
    sidecar = sidecar_near(path)
    if sidecar.exists():
        info = read_model_info(sidecar)
        if info.embedding_size != embedding_size:
            raise InputError(
                f"{path}: the graph gives {embedding_size}-d embeddings, {sidecar} says "
                f"{info.embedding_size}"
            )
        return info, None
    model_def = detect_graph_architecture(graph_def) or FROZEN_MODEL_DEF
    mode, _ = original_standardization(path.name, embedding_size)
    info = ModelInfo(model_def, embedding_size, image_size, mode)
    return info, assumed_preprocessing(path, info)


def load_frozen_graph(path: str | Path) -> EmbeddingModel:
    """Load a frozen graph (``.pb``) as an ``EmbeddingModel`` that runs the graph itself.

    The sidecar is ``<stem>.json`` or ``model.json`` beside it; without one the embedding size
    and input size come from the graph and the standardisation is the original's choice
    (``tf1_import.original_standardization``), stated in ``EmbeddingModel.assumed``.

    Raises:
        InputError: see ``read_graph_def`` and ``import_graph``.
    """
    import tensorflow as tf

    path = Path(path)
    graph_def = read_graph_def(path)
    forward = import_graph(path, graph_def)
    info, assumed = _graph_info(path, graph_def, forward)
    if forward.inputs[0].shape.rank == 4 and forward.inputs[0].shape[1] not in (
        None,
        info.image_size,
    ):
        raise InputError(
            f"{path}: the graph takes {forward.inputs[0].shape[1]} px images, its sidecar "
            f"says {info.image_size}"
        )

    def embed(images: np.ndarray) -> np.ndarray:
        # Eager preprocessing around the imported function: wrapping both in one more
        # tf.function would have Grappler optimise the whole graph a second time (seconds).
        out = forward(preprocess_tensor(info, tf.constant(images)))
        out = tf.math.l2_normalize(tf.reshape(out, (-1, info.embedding_size)), 1, 1e-10)
        return out.numpy()

    return EmbeddingModel(
        info, path, None, kind="frozen_graph", handle=forward, assumed=assumed,
        _embed=batched(embed, info, EMBED_BATCH),
    )  # fmt: skip


def load_frozen_weights(keras_model: Any, path: str | Path) -> int:
    """Copy a frozen graph's constants into ``keras_model`` by the original variable names.

    Freezing turns each variable ``X/weights`` into a constant of the same name, so a graph of
    the original's networks holds every weight ``tf1_import`` knows how to place.

    Returns:
        The number of variables assigned.

    Raises:
        InputError: the graph lacks a weight of the model or has it in another shape.
    """
    import tensorflow as tf

    from facenet_cli.models.tf1_import import assign_by_tf1_names

    constants = {n.name: n for n in read_graph_def(Path(path)).node if n.op == "Const"}
    shapes = {
        name: [d.size for d in node.attr["value"].tensor.tensor_shape.dim]
        for name, node in constants.items()
    }
    return assign_by_tf1_names(
        keras_model, shapes, lambda name: tf.make_ndarray(constants[name].attr["value"].tensor),
        path,
    )  # fmt: skip
