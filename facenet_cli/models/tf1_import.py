"""Import the original's TF1 (slim) checkpoints into the Keras models by variable name.

The released FaceNet models are TF1 ``Saver`` checkpoints whose variables carry slim's scope
names, e.g. ``InceptionResnetV1/Repeat/block35_1/Branch_1/Conv2d_0b_3x3/weights``,
``.../BatchNorm/beta``, ``.../BatchNorm/moving_mean``, ``InceptionResnetV1/Bottleneck/weights``.
``tf1_variable_map`` names every variable of a Keras model the way the original named it;
``load_tf1_weights`` copies the values over with ``tf.train.load_checkpoint``.

Naming rules of the original (slim): ``slim.repeat`` opens a ``Repeat`` scope (``Repeat_1``,
``Repeat_2`` for the second and third repeats) holding ``block35_1`` ... ``block35_N``; the
final Block8 without activation keeps its default scope ``Block8``; a convolution followed by
batch norm has ``weights`` and ``BatchNorm/{beta,moving_mean,moving_variance}``; the residual
"up" convolution has ``weights`` and ``biases``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError
from facenet_cli.models.sidecar import ModelInfo

# Keras model name -> the original's top-level variable scope.
TF1_ROOTS = {
    "inception_resnet_v1": "InceptionResnetV1",
    "inception_resnet_v2": "InceptionResnetV2",
    "squeezenet": "squeezenet",
}
# The original's released models: the 2018 ones (512-d) were trained with fixed image
# standardisation (``--use_fixed_image_standardization``), the 2017 ones (128-d) with per-image.
DEFAULT_STANDARDIZATION = "fixed"
_RELEASE_NAME = re.compile(r"(20\d\d)[01]\d[0-3]\d-\d{6}")  # 20180402-114759


def original_standardization(name: str, embedding_size: int) -> tuple[str, str]:
    """The standardisation the original used for a released model, and why it is chosen.

    By the release date in ``name`` when it has one (``20170512-110547``: per-image; 2018:
    fixed), else by the embedding size (the 2017 releases are 128-d, the 2018 ones 512-d).

    Returns:
        ``(mode, reason)``, e.g. ``("fixed", "the original's choice for its 2018 models")``.
    """
    match = _RELEASE_NAME.search(name)
    if match is not None:
        year = int(match.group(1))
        mode = "per_image" if year <= 2017 else DEFAULT_STANDARDIZATION
        return mode, f"the original's choice for its {year} models"
    if embedding_size == 128:
        return "per_image", "the original's choice for its 128-d (2017) models"
    return DEFAULT_STANDARDIZATION, "the original's choice for its 512-d (2018) models"


def assumed_preprocessing(source: str | Path, info: ModelInfo) -> str:
    """The line that tells the user which preprocessing a model without a sidecar gets."""
    _, reason = original_standardization(Path(source).name, info.embedding_size)
    flag = {"fixed": " (--use-fixed-image-standardization)", "per_image": ""}.get(
        info.standardization, ""
    )
    return (
        f"{source}: no model.json, so {info.standardization} image standardisation{flag} is "
        f"assumed, {reason}; {info.image_size} px {info.color_order}; a model.json beside it "
        "sets another"
    )


EMA_SUFFIX = "/ExponentialMovingAverage"


def _conv_bn(scope: str, layer: Any) -> dict[str, Any]:
    return {
        f"{scope}/weights": layer.conv.kernel,
        f"{scope}/BatchNorm/beta": layer.bn.beta,
        f"{scope}/BatchNorm/moving_mean": layer.bn.moving_mean,
        f"{scope}/BatchNorm/moving_variance": layer.bn.moving_variance,
    }


def _unit(scope: str, layer: Any) -> dict[str, Any]:
    from keras import layers

    from facenet_cli.models.blocks import ConvBN

    if isinstance(layer, ConvBN):
        return _conv_bn(scope, layer)
    if isinstance(layer, layers.Conv2D):
        return {f"{scope}/weights": layer.kernel, f"{scope}/biases": layer.bias}
    raise TypeError(f"no TF1 name for {type(layer).__name__} at {scope}")


def tf1_variable_map(keras_model: Any) -> dict[str, Any]:
    """Map the original's TF1 variable names to the variables of ``keras_model``.

    Works for ``inception_resnet_v1``, ``inception_resnet_v2`` and ``squeezenet``; every
    variable of the model appears exactly once.

    Raises:
        ValueError: the model is not one of those architectures.
    """
    from keras import layers

    from facenet_cli.models.blocks import Block8, Block17, Block35, ConvBN

    root = TF1_ROOTS.get(keras_model.name)
    if root is None:
        raise ValueError(
            f"model {keras_model.name!r} has no TF1 original; known: {', '.join(TF1_ROOTS)}"
        )
    repeat_scopes = {Block35: "Repeat", Block17: "Repeat_1", Block8: "Repeat_2"}
    names: dict[str, Any] = {}
    for layer in keras_model.layers:
        scope = f"{root}/{layer.name}"
        if isinstance(layer, ConvBN):
            names.update(_conv_bn(scope, layer))
        elif hasattr(layer, "tf1_units"):
            repeat = repeat_scopes.get(type(layer))
            if repeat is not None and layer.name.rsplit("_", 1)[-1].isdigit():
                scope = f"{root}/{repeat}/{layer.name}"
            for relative, unit in layer.tf1_units():
                names.update(_unit(f"{scope}/{relative}", unit))
        elif layer.name == "Bottleneck":
            names[f"{root}/Bottleneck/weights"] = layer.kernel
        elif layer.name == "Bottleneck_BatchNorm":
            names[f"{root}/Bottleneck/BatchNorm/beta"] = layer.beta
            names[f"{root}/Bottleneck/BatchNorm/moving_mean"] = layer.moving_mean
            names[f"{root}/Bottleneck/BatchNorm/moving_variance"] = layer.moving_variance
        elif isinstance(layer, layers.Conv2D):
            names.update(_unit(scope, layer))
        elif layer.weights:
            raise ValueError(f"layer {layer.name!r} has weights but no TF1 name")
    if len(names) != len(keras_model.weights):
        raise ValueError(f"named {len(names)} of {len(keras_model.weights)} variables")
    return names


def detect_architecture(prefix: str | Path) -> tuple[str, int]:
    """``(model_def, embedding_size)`` of a TF1 checkpoint, read from its variable names.

    Raises:
        InputError: no known architecture's variables are in the checkpoint.
    """
    import tensorflow as tf

    shapes = tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map()
    for model_def, root in TF1_ROOTS.items():
        bottleneck = shapes.get(f"{root}/Bottleneck/weights")
        if bottleneck is not None:
            return model_def, int(bottleneck[-1])
    raise InputError(
        f"{prefix}: not an original FaceNet checkpoint (no {{InceptionResnetV1,"
        f"InceptionResnetV2,squeezenet}}/Bottleneck/weights variable)"
    )


def release_image_size(prefix: str | Path) -> int | None:
    """The input size of a released model folder, read from its one ``.meta`` graph.

    The original saves ``model-<name>.meta`` beside the checkpoint; its ``input:0`` tensor has
    the static shape the model was trained at. None when there is no single ``.meta`` or it
    does not say.
    """
    import tensorflow as tf

    metas = sorted(Path(prefix).parent.glob("*.meta"))
    if len(metas) != 1:
        return None
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.compat.v1.train.import_meta_graph(str(metas[0]), clear_devices=True)
            shape = graph.get_tensor_by_name("input:0").shape
        except Exception:  # noqa: BLE001 - a meta graph that does not say is no error
            return None
    if shape.rank != 4 or shape[1] is None:
        return None
    return int(shape[1])


def assign_by_tf1_names(
    keras_model: Any,
    shapes: Mapping[str, Sequence[int]],
    value: Callable[[str], Any],
    where: str | Path,
    use_moving_averages: bool = False,
) -> int:
    """Assign every variable of ``keras_model`` the value stored under its original TF1 name.

    Args:
        keras_model: a freshly built model of the source's architecture.
        shapes: the source's name -> shape map.
        value: name -> the stored value (numpy).
        where: the source, for messages.
        use_moving_averages: take ``<name>/ExponentialMovingAverage`` where the source has it.

    Returns:
        The number of variables assigned.

    Raises:
        InputError: a variable is missing or has another shape (names the first few).
    """
    mapping = tf1_variable_map(keras_model)
    missing = [name for name in mapping if name not in shapes]
    if missing:
        raise InputError(
            f"{where}: {len(missing)} of {len(mapping)} variables missing, e.g. "
            f"{', '.join(missing[:3])}"
        )
    for name, variable in mapping.items():
        key = name
        if use_moving_averages and f"{name}{EMA_SUFFIX}" in shapes:
            key = f"{name}{EMA_SUFFIX}"
        if tuple(shapes[key]) != tuple(variable.shape):
            raise InputError(
                f"{where}: {key} has shape {tuple(shapes[key])}, the model expects "
                f"{tuple(variable.shape)}"
            )
        variable.assign(value(key))
    return len(mapping)


def load_tf1_weights(
    keras_model: Any, prefix: str | Path, use_moving_averages: bool = False
) -> int:
    """Copy a TF1 checkpoint's values into ``keras_model`` by the original variable names.

    Args:
        keras_model: a freshly built model of the checkpoint's architecture.
        prefix: the checkpoint prefix (``.../model-20180402-114759.ckpt-275``).
        use_moving_averages: take ``<name>/ExponentialMovingAverage`` where the checkpoint has
            it (a training checkpoint that saved the weight EMA).

    Returns:
        The number of variables assigned.

    Raises:
        InputError: a variable is missing or has another shape (names the first few).
    """
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(prefix))
    shapes = reader.get_variable_to_shape_map()
    return assign_by_tf1_names(keras_model, shapes, reader.get_tensor, prefix, use_moving_averages)


def import_tf1_checkpoint(
    prefix: str | Path,
    info: ModelInfo | None = None,
    *,
    image_size: int = 160,
    standardization: str | None = None,
    use_moving_averages: bool = False,
) -> tuple[Any, ModelInfo]:
    """Build the architecture of an original TF1 checkpoint and load its weights.

    Args:
        prefix: the checkpoint prefix.
        info: the sidecar to use (e.g. a ``model.json`` placed next to the checkpoint); when
            None it is inferred: architecture and embedding size from the variables, and
            ``image_size`` / ``standardization`` from the arguments.
        image_size: input size when ``info`` is None (the released models use 160).
        standardization: ``fixed`` for the 2018 releases, ``per_image`` for the 2017 ones;
            None: the original's choice for this checkpoint (``original_standardization``).
        use_moving_averages: see ``load_tf1_weights``.

    Returns:
        ``(keras_model, info)``.
    """
    from facenet_cli.models.registry import create_model

    model_def, embedding_size = detect_architecture(prefix)
    if info is None:
        if standardization is None:
            standardization, _ = original_standardization(Path(prefix).name, embedding_size)
        info = ModelInfo(model_def, embedding_size, image_size, standardization)
    elif info.model_def != model_def or info.embedding_size != embedding_size:
        raise InputError(
            f"{prefix}: checkpoint holds {model_def} with {embedding_size}-d embeddings, the "
            f"sidecar says {info.model_def} with {info.embedding_size}"
        )
    model = create_model(info.model_def, **info.build_kwargs())
    load_tf1_weights(model, prefix, use_moving_averages)
    return model, info
