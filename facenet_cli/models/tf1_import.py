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
# The original's released models were trained with fixed image standardisation (2018 models).
DEFAULT_STANDARDIZATION = "fixed"
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
    mapping = tf1_variable_map(keras_model)
    missing = [name for name in mapping if name not in shapes]
    if missing:
        raise InputError(
            f"{prefix}: {len(missing)} of {len(mapping)} variables missing, e.g. "
            f"{', '.join(missing[:3])}"
        )
    for name, variable in mapping.items():
        key = name
        if use_moving_averages and f"{name}{EMA_SUFFIX}" in shapes:
            key = f"{name}{EMA_SUFFIX}"
        if tuple(shapes[key]) != tuple(variable.shape):
            raise InputError(
                f"{prefix}: {key} has shape {tuple(shapes[key])}, the model expects "
                f"{tuple(variable.shape)}"
            )
        variable.assign(reader.get_tensor(key))
    return len(mapping)


def import_tf1_checkpoint(
    prefix: str | Path,
    info: ModelInfo | None = None,
    *,
    image_size: int = 160,
    standardization: str = DEFAULT_STANDARDIZATION,
    use_moving_averages: bool = False,
) -> tuple[Any, ModelInfo]:
    """Build the architecture of an original TF1 checkpoint and load its weights.

    Args:
        prefix: the checkpoint prefix.
        info: the sidecar to use (e.g. a ``model.json`` placed next to the checkpoint); when
            None it is inferred: architecture and embedding size from the variables, and
            ``image_size`` / ``standardization`` from the arguments.
        image_size: input size when ``info`` is None (the released models use 160).
        standardization: ``fixed`` for the 2018 releases, ``per_image`` for the 2017 ones.
        use_moving_averages: see ``load_tf1_weights``.

    Returns:
        ``(keras_model, info)``.
    """
    from facenet_cli.models.registry import create_model

    model_def, embedding_size = detect_architecture(prefix)
    if info is None:
        info = ModelInfo(model_def, embedding_size, image_size, standardization)
    elif info.model_def != model_def or info.embedding_size != embedding_size:
        raise InputError(
            f"{prefix}: checkpoint holds {model_def} with {embedding_size}-d embeddings, the "
            f"sidecar says {info.model_def} with {info.embedding_size}"
        )
    model = create_model(info.model_def, **info.build_kwargs())
    load_tf1_weights(model, prefix, use_moving_averages)
    return model, info
