"""Load an embedding model from a run, a checkpoint, an export, a SavedModel or a .keras file.

Every loaded model is wrapped as an ``EmbeddingModel`` whose ``embed`` takes RAW pixels
(float32 0..255, ``(N, S, S, 3)``, RGB), applies the model's own preprocessing (colour order,
standardisation, both stated in its ``model.json``) and returns L2-normalised embeddings,
always in inference mode. ``embedding_fn`` wraps an in-memory Keras model the same way, and
``embed_tensor`` is the one TensorFlow definition of that computation, shared with the export.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.models.sidecar import SIDECAR_NAME, ModelInfo, read_model_info

KERAS_FILE_NAME = "model.keras"
SAVED_MODEL_DIR = "saved_model"
EMBED_BATCH = 128  # images per forward pass inside ``embed``; bounds memory for big models

EmbedFn = Callable[[np.ndarray], np.ndarray]


def standardize_tensor(images: Any, mode: str) -> Any:
    """Standardise a float32 batch of raw pixels: ``per_image``, ``fixed`` or ``none``.

    The same function the data pipeline uses, so training and export cannot drift apart.
    """
    from facenet_cli.data.pipeline import standardize

    return standardize(images, mode)


def embed_tensor(keras_model: Any, info: ModelInfo, images: Any) -> Any:
    """Raw pixels (any real dtype, RGB) -> L2-normalised embeddings, in inference mode.

    This is the single definition of the embedding computation: the in-memory wrapper, the
    loaded models and the exported SavedModel all run exactly this.
    """
    import tensorflow as tf

    x = tf.cast(images, tf.float32)
    if info.color_order == "BGR":
        x = x[..., ::-1]
    x = standardize_tensor(x, info.standardization)
    if not info.flip_fusion:
        prelogits = keras_model(x, training=False)
        # The original normalises with epsilon 1e-10 (tf.nn.l2_normalize(prelogits, 1, 1e-10)).
        return tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)
    # One forward pass over the faces and their mirror images; each half normalised, summed and
    # normalised again, so a face and its mirror image have the same embedding.
    both = tf.math.l2_normalize(
        keras_model(tf.concat([x, x[:, :, ::-1, :]], axis=0), training=False),
        axis=1, epsilon=1e-10,
    )  # fmt: skip
    face, mirror = tf.split(both, 2, axis=0)
    return tf.math.l2_normalize(face + mirror, axis=1, epsilon=1e-10)


def _batched(fn: Callable[[Any], Any], info: ModelInfo, batch_size: int) -> EmbedFn:
    size = info.image_size

    def embed(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[1:] != (size, size, 3):
            raise ValueError(
                f"expected images of shape (N, {size}, {size}, 3), got {tuple(images.shape)}"
            )
        if len(images) == 0:
            return np.zeros((0, info.embedding_size), np.float32)
        images = images.astype(np.float32, copy=False)
        parts = [
            np.asarray(fn(images[i : i + batch_size]), dtype=np.float32)
            for i in range(0, len(images), batch_size)
        ]
        return np.concatenate(parts, axis=0)

    return embed


def embedding_fn(
    keras_model: Any, info: ModelInfo, batch_size: int = EMBED_BATCH, *, xla: bool = False
) -> EmbedFn:
    """Wrap an in-memory Keras model as ``raw pixel batch -> L2-normalised embeddings``.

    The wrapper reads the model's current weights at every call (the training loop evaluates
    through it between epochs) and always runs in inference mode.

    Args:
        keras_model: a model from ``create_model`` (standardised images -> prelogits).
        info: its sidecar (image size, standardisation, colour order).
        batch_size: images per forward pass.
        xla: compile the forward pass with XLA (``jit_compile``; one compilation per batch
            shape, so a run's last, shorter batch compiles once more).

    Returns:
        A function taking float32 raw pixels ``(N, S, S, 3)`` and returning ``(N, D)`` numpy.
    """
    import tensorflow as tf

    spec = tf.TensorSpec((None, info.image_size, info.image_size, 3), tf.float32)

    @tf.function(input_signature=[spec], reduce_retracing=True, jit_compile=xla)
    def forward(images: Any) -> Any:
        return embed_tensor(keras_model, info, images)

    return _batched(forward, info, batch_size)


@dataclass
class EmbeddingModel:
    """A loaded embedding model.

    Attributes:
        info: the model's sidecar.
        source: what it was loaded from (run dir, checkpoint prefix, file or folder).
        keras_model: the Keras model when the source holds one (None for a bare SavedModel).
        kind: ``checkpoint``, ``tf1_checkpoint``, ``keras`` or ``saved_model``.
    """

    info: ModelInfo
    source: Path
    keras_model: Any = None
    kind: str = "checkpoint"
    handle: Any = field(default=None, repr=False)  # keeps a loaded SavedModel alive
    _embed: EmbedFn | None = field(default=None, repr=False)

    def embed(self, images: np.ndarray) -> np.ndarray:
        """Float32 raw pixels ``(N, S, S, 3)`` 0..255 RGB -> L2-normalised ``(N, D)``."""
        if self._embed is None:
            self._embed = embedding_fn(self.keras_model, self.info)
        return self._embed(images)

    def embedder(self, *, xla: bool = False) -> EmbedFn:
        """The function behind ``embed``; ``xla`` compiles a Keras model's forward pass with XLA.

        A bare SavedModel runs the graph it was saved with, so ``xla`` does not apply to it.
        """
        if xla and self.keras_model is not None:
            return embedding_fn(self.keras_model, self.info, xla=True)
        return self.embed


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


def load_embedding_model(path: str | Path) -> EmbeddingModel:
    """Load an embedding model from any of the places the commands accept.

    ``path`` may be a run directory (newest checkpoint, ``model.json`` beside it), a checkpoint
    prefix (``.../ckpt-1200``, sidecar in its folder), an exported folder (``model.keras`` +
    ``saved_model/`` + ``model.json``), a SavedModel directory, a ``.keras`` file (sidecar
    ``<stem>.json`` or ``model.json`` beside it), or an original TF1 checkpoint (folder or
    prefix; its architecture is read from the variable names).

    Raises:
        InputError: nothing loadable at ``path``; the message says what was looked for.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.suffix == ".keras":
        return _load_keras_file(path, _sidecar_near(path))
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_saved_model(path)
        if (path / KERAS_FILE_NAME).exists():
            return _load_keras_file(path / KERAS_FILE_NAME, _sidecar_near(path / KERAS_FILE_NAME))
        if (path / SAVED_MODEL_DIR / "saved_model.pb").exists():
            return _load_saved_model(path / SAVED_MODEL_DIR)
        prefix = newest_checkpoint(path)
        if prefix is None:
            raise InputError(
                f"{path}: no checkpoint, SavedModel or {KERAS_FILE_NAME} found in this directory"
            )
        return _load_checkpoint(prefix)
    if Path(f"{path}.index").exists():
        return _load_checkpoint(path)
    if not path.exists():
        raise InputError(f"{path}: no such model, run directory or checkpoint")
    raise InputError(f"{path}: not a run directory, checkpoint, SavedModel or .keras file")


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
        from facenet_cli.models.tf1_import import import_tf1_checkpoint

        info = read_model_info(sidecar) if sidecar.exists() else None
        model, info = import_tf1_checkpoint(prefix, info=info)
        return EmbeddingModel(info, prefix, model, kind="tf1_checkpoint")
    if not sidecar.exists():
        raise InputError(f"{sidecar}: model sidecar not found next to checkpoint {prefix.name}")
    info = read_model_info(sidecar)
    model = build_model(info)
    restore_checkpoint(model, prefix)
    return EmbeddingModel(info, prefix, model, kind="checkpoint")


def _sidecar_near(keras_file: Path) -> Path:
    own = keras_file.with_suffix(".json")
    return own if own.exists() else keras_file.parent / SIDECAR_NAME


def _load_keras_file(path: Path, sidecar: Path) -> EmbeddingModel:
    import keras

    # Registers the custom layers (Block35, ConvBN, ...) so safe-mode loading can find them.
    import facenet_cli.models.blocks  # noqa: F401
    import facenet_cli.models.squeezenet  # noqa: F401

    info = read_model_info(sidecar)
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
        _embed=_batched(forward, info, EMBED_BATCH),
    )  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_pretrained(keras_model: Any, source: str | Path) -> str:
    """Copy pretrained weights from ``source`` into an already built ``keras_model``.

    For ``--pretrained-model``: ``source`` may be anything ``load_embedding_model`` accepts.
    Checkpoints (ours or the original's TF1 ones) are restored straight into ``keras_model``, so
    its own input size is kept; exports and ``.keras`` files are loaded and their weights copied.

    Returns:
        What was loaded, e.g. ``"checkpoint .../ckpt-1200 (ema_model)"``.

    Raises:
        InputError: nothing loadable, or the weights do not fit ``keras_model``.
    """
    path = Path(source).expanduser()
    prefix: Path | None = None
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
        raise InputError(f"{path}: a bare SavedModel holds no Keras weights to start from")
    source_weights = loaded.keras_model.get_weights()
    shapes = [tuple(w.shape) for w in source_weights]
    if shapes != [tuple(int(d) for d in v.shape) for v in keras_model.weights]:
        raise InputError(f"{path}: its {loaded.info.model_def} weights do not fit this model")
    keras_model.set_weights(source_weights)
    return f"{loaded.kind} {path}"
