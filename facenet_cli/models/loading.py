"""Load an embedding model from any form the commands accept: one row per format in ``FORMATS``.

Runs, checkpoints (ours and the original's TF1 ones), exports, SavedModels and ``.keras`` files
are loaded here; frozen TF1 graphs (``frozen_graph.py``), ONNX (``onnx_model.py``) and TFLite
(``tflite_model.py``) files by their own modules. Every loaded model is an ``EmbeddingModel``
(``embedding_model.py``) whose ``embed`` takes raw pixels and returns L2-normalised embeddings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.models.embedding_model import (
    EMBED_BATCH,
    EmbeddingModel,
    EmbedFn,
    batched,
    embed_tensor,
    embedding_fn,
    standardize_tensor,
)
from facenet_cli.models.sidecar import SIDECAR_NAME, ModelInfo, read_model_info, sidecar_near

__all__ = [
    "EMBED_BATCH",
    "FORMATS",
    "EmbedFn",
    "EmbeddingModel",
    "build_model",
    "embed_tensor",
    "embedding_fn",
    "load_embedding_model",
    "load_pretrained",
    "standardize_tensor",
]

KERAS_FILE_NAME = "model.keras"
SAVED_MODEL_DIR = "saved_model"

# ------------------------------------------------------------------------------------ building


def build_model(info: ModelInfo) -> Any:
    """Rebuild the architecture a sidecar describes (fresh weights)."""
    from facenet_cli.models.registry import create_model

    return create_model(info.model_def, **info.build_kwargs())


def is_tf1_checkpoint(prefix: str | Path) -> bool:
    """True for a name-based (TF1 ``Saver``) checkpoint, False for an object-based (TF2) one."""
    import tensorflow as tf

    names = tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map()
    return "_CHECKPOINTABLE_OBJECT_GRAPH" not in names


def restore_checkpoint(keras_model: Any, prefix: str | Path) -> str:
    """Restore a run checkpoint into ``keras_model``: ``ema_model`` when present, else ``model``.

    Returns:
        The checkpoint attribute restored (``"ema_model"`` or ``"model"``).

    Raises:
        InputError: the checkpoint is unreadable or its variables do not fit the architecture.
    """
    import tensorflow as tf

    try:
        names = tf.train.load_checkpoint(str(prefix)).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as exc:
        raise InputError(f"{prefix}: unreadable checkpoint ({_first_line(exc)})") from None
    key = "ema_model" if any(n.startswith("ema_model/") for n in names) else "model"
    if not any(n.startswith(f"{key}/") for n in names):
        raise InputError(f"{prefix}: checkpoint holds no 'model' or 'ema_model'")
    problem = _shape_mismatch(keras_model, names, key)
    if problem is not None:
        raise InputError(
            f"{prefix}: checkpoint does not match the architecture in {SIDECAR_NAME} ({problem})"
        )
    try:
        status = tf.train.Checkpoint(**{key: keras_model}).restore(str(prefix)).expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as exc:
        raise InputError(
            f"{prefix}: checkpoint does not match the architecture in {SIDECAR_NAME} "
            f"({_first_line(exc)})"
        ) from None
    return key


def _shape_mismatch(keras_model: Any, names: dict[str, list[int]], key: str) -> str | None:
    """Compare variable shapes before restoring: a restore that fails half-way floods the log.

    Returns:
        None when every model variable has a same-shaped value under ``key``, else a reason.
    """
    from collections import Counter

    stored = Counter(
        tuple(shape)
        for name, shape in names.items()
        if name.startswith(f"{key}/")
        and name.endswith("VARIABLE_VALUE")
        and ".OPTIMIZER_SLOT" not in name
    )
    wanted = Counter(tuple(int(d) for d in v.shape) for v in keras_model.weights)
    lacking = wanted - stored
    if not lacking:
        return None
    shape, count = next(iter(lacking.items()))
    return (
        f"{sum(lacking.values())} of {len(keras_model.weights)} variables have no match, "
        f"e.g. {count} of shape {shape}"
    )


# ------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class ModelFormat:
    """One form a model can take on disk.

    Attributes:
        kind: the ``EmbeddingModel.kind`` it loads as (a checkpoint may load as either kind).
        what: how error messages name it.
        find: ``path`` -> what to load when ``path`` holds this format, else None.
        load: that -> the loaded model.
    """

    kind: str
    what: str
    find: Callable[[Path], Path | None]
    load: Callable[[Path], EmbeddingModel]


def _file(suffix: str) -> Callable[[Path], Path | None]:
    def find(path: Path) -> Path | None:
        return path if path.is_file() and path.suffix.lower() == suffix else None

    return find


def _inside(*parts: str) -> Callable[[Path], Path | None]:
    def find(path: Path) -> Path | None:
        return path if path.is_dir() and path.joinpath(*parts).exists() else None

    return find


def _find_saved_model(path: Path) -> Path | None:
    if path.is_file() and path.name == "saved_model.pb":
        return path.parent
    return path if path.is_dir() and (path / "saved_model.pb").exists() else None


def _find_frozen_graph(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".pb" and path.name != "saved_model.pb":
        return path
    return None


def _find_checkpoint(path: Path) -> Path | None:
    if path.is_dir():
        return newest_checkpoint(path)
    return path if Path(f"{path}.index").exists() else None


def _frozen_graph(path: Path) -> EmbeddingModel:
    from facenet_cli.models.frozen_graph import load_frozen_graph

    return load_frozen_graph(path)


def _onnx(path: Path) -> EmbeddingModel:
    from facenet_cli.models.onnx_model import load_onnx_model

    return load_onnx_model(path)


def _tflite(path: Path) -> EmbeddingModel:
    from facenet_cli.models.tflite_model import load_tflite_model

    return load_tflite_model(path)


# Tried in this order; the first whose ``find`` answers loads the model. A folder with a
# SavedModel or an export wins over checkpoints beside them; the original's released folder
# (``.pb`` beside ``model-<name>.meta`` and the ckpt) loads through its checkpoint.
FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat("keras", ".keras file", _file(".keras"), lambda p: _load_keras_file(p)),
    ModelFormat("frozen_graph", "frozen TF1 graph (.pb)", _find_frozen_graph, _frozen_graph),
    ModelFormat("onnx", "ONNX model (.onnx)", _file(".onnx"), _onnx),
    ModelFormat("tflite", "TFLite model (.tflite)", _file(".tflite"), _tflite),
    ModelFormat("saved_model", "SavedModel", _find_saved_model, lambda p: _load_saved_model(p)),
    ModelFormat(
        "keras",
        "export folder",
        _inside(KERAS_FILE_NAME),
        lambda p: _load_keras_file(p / KERAS_FILE_NAME),
    ),  # fmt: skip
    ModelFormat(
        "saved_model",
        "export folder",
        _inside(SAVED_MODEL_DIR, "saved_model.pb"),
        lambda p: _load_saved_model(p / SAVED_MODEL_DIR),
    ),  # fmt: skip
    ModelFormat(
        "checkpoint", "run directory or checkpoint", _find_checkpoint, lambda p: _load_checkpoint(p)
    ),  # fmt: skip
)


def load_embedding_model(path: str | Path) -> EmbeddingModel:
    """Load an embedding model from any of the places the commands accept (``FORMATS``).

    ``path`` may be a run directory (newest checkpoint, ``model.json`` beside it), a checkpoint
    prefix (``.../ckpt-1200``, sidecar in its folder), an exported folder (``model.keras`` +
    ``saved_model/`` + ``model.json``), a SavedModel directory, a ``.keras`` file (sidecar
    ``<stem>.json`` or ``model.json`` beside it), an original TF1 checkpoint (folder or
    prefix; its architecture is read from the variable names), a frozen TF1 graph (``.pb``),
    an ONNX or a TFLite file. A model without a sidecar gets the original's preprocessing, and
    a line on stderr says which.

    Raises:
        InputError: nothing loadable at ``path``; the message says what was looked for.
    """
    path = Path(path).expanduser()
    for form in FORMATS:
        found = form.find(path)
        if found is not None:
            model = form.load(found)
            if model.assumed is not None:
                from facenet_cli.progress import console

                console.print(f"note: {model.assumed}", highlight=False, soft_wrap=True)
            return model
    if not path.exists():
        raise InputError(f"{path}: no such model, run directory or checkpoint")
    if path.is_dir():
        raise InputError(
            f"{path}: no checkpoint, SavedModel or {KERAS_FILE_NAME} found in this directory"
        )
    raise InputError(
        f"{path}: not a run directory, checkpoint, SavedModel, .keras, frozen graph (.pb), "
        ".onnx or .tflite file"
    )


def newest_checkpoint(directory: Path) -> Path | None:
    """Newest checkpoint prefix in ``directory``: the ``checkpoint`` state file, else the
    ``*.index`` file with the highest step number (how the original's model folders look)."""
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(directory))
    if latest is not None and Path(f"{latest}.index").exists():
        return Path(latest)
    indexes = sorted(directory.glob("*.index"))
    if not indexes:
        return None

    def step(p: Path) -> int:
        m = re.search(r"-(\d+)$", p.stem)
        return int(m.group(1)) if m else -1

    best = max(indexes, key=lambda p: (step(p), p.stat().st_mtime))
    return best.with_suffix("")


def _load_checkpoint(prefix: Path) -> EmbeddingModel:
    sidecar = prefix.parent / SIDECAR_NAME
    try:
        tf1 = is_tf1_checkpoint(prefix)
    except Exception as exc:  # noqa: BLE001 - any reader failure means "not a checkpoint"
        raise InputError(f"{prefix}: unreadable checkpoint ({_first_line(exc)})") from None
    if tf1:
        from facenet_cli.models.tf1_import import (
            assumed_preprocessing,
            import_tf1_checkpoint,
            release_image_size,
        )

        info = read_model_info(sidecar) if sidecar.exists() else None
        size = None if info is not None else release_image_size(prefix)
        model, info = import_tf1_checkpoint(prefix, info=info, image_size=size or 160)
        assumed = None if sidecar.exists() else assumed_preprocessing(prefix, info)
        return EmbeddingModel(info, prefix, model, kind="tf1_checkpoint", assumed=assumed)
    if not sidecar.exists():
        raise InputError(f"{sidecar}: model sidecar not found next to checkpoint {prefix.name}")
    info = read_model_info(sidecar)
    model = build_model(info)
    restore_checkpoint(model, prefix)
    return EmbeddingModel(info, prefix, model, kind="checkpoint")


def _load_keras_file(path: Path) -> EmbeddingModel:
    import keras

    # Registers the custom layers (Block35, ConvBN, ...) so safe-mode loading can find them.
    import facenet_cli.models.blocks  # noqa: F401
    import facenet_cli.models.squeezenet  # noqa: F401

    info = read_model_info(sidecar_near(path))
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise InputError(f"{path}: cannot load Keras model ({_first_line(exc)})") from None
    return EmbeddingModel(info, path, model, kind="keras")


def _load_saved_model(directory: Path) -> EmbeddingModel:
    import tensorflow as tf

    sidecar = directory / SIDECAR_NAME
    if not sidecar.exists():
        sidecar = directory.parent / SIDECAR_NAME
    info = read_model_info(sidecar)
    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"{directory}: cannot load SavedModel ({_first_line(exc)})") from None
    if hasattr(loaded, "serve"):
        serve = loaded.serve
    elif "serving_default" in loaded.signatures:
        serve = loaded.signatures["serving_default"]
    else:
        raise InputError(f"{directory}: SavedModel has no serving signature")

    def forward(images: np.ndarray) -> np.ndarray:
        out = serve(tf.constant(images, tf.float32))
        if isinstance(out, dict):
            out = out["embeddings"] if "embeddings" in out else next(iter(out.values()))
        return out.numpy()

    return EmbeddingModel(
        info, directory, None, kind="saved_model", handle=loaded,
        _embed=batched(forward, info, EMBED_BATCH),
    )  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_pretrained(keras_model: Any, source: str | Path) -> str:
    """Copy pretrained weights from ``source`` into an already built ``keras_model``.

    For ``--pretrained-model``: ``source`` may be anything ``load_embedding_model`` accepts.
    Checkpoints (ours or the original's TF1 ones) and frozen graphs of the original's networks
    (their constants, by name) go straight into ``keras_model``, so its own input size is kept;
    exports and ``.keras`` files are loaded and their weights copied. ONNX, TFLite and bare
    SavedModels hold no weights to copy.

    Returns:
        What was loaded, e.g. ``"checkpoint .../ckpt-1200 (ema_model)"``.

    Raises:
        InputError: nothing loadable, or the weights do not fit ``keras_model``.
    """
    path = Path(source).expanduser()
    prefix: Path | None = None
    if _find_frozen_graph(path) is not None:
        from facenet_cli.models.frozen_graph import load_frozen_weights

        try:
            load_frozen_weights(keras_model, path)
        except ValueError as exc:  # the model has no TF1 original
            raise InputError(f"{path}: {_first_line(exc)}") from None
        return f"frozen graph {path}"
    if Path(f"{path}.index").exists():
        prefix = path
    elif path.is_dir() and not any(
        (path / name).exists() for name in ("saved_model.pb", KERAS_FILE_NAME, SAVED_MODEL_DIR)
    ):
        prefix = newest_checkpoint(path)
    if prefix is not None:
        if is_tf1_checkpoint(prefix):
            from facenet_cli.models.tf1_import import load_tf1_weights

            try:
                load_tf1_weights(keras_model, prefix)
            except ValueError as exc:  # the model has no TF1 original
                raise InputError(f"{prefix}: {_first_line(exc)}") from None
            return f"TF1 checkpoint {prefix}"
        return f"checkpoint {prefix} ({restore_checkpoint(keras_model, prefix)})"
    loaded = load_embedding_model(path)
    if loaded.keras_model is None:
        raise InputError(f"{path}: a bare {loaded.kind} holds no Keras weights to start from")
    source_weights = loaded.keras_model.get_weights()
    shapes = [tuple(w.shape) for w in source_weights]
    if shapes != [tuple(int(d) for d in v.shape) for v in keras_model.weights]:
        raise InputError(f"{path}: its {loaded.info.model_def} weights do not fit this model")
    keras_model.set_weights(source_weights)
    return f"{loaded.kind} {path}"
