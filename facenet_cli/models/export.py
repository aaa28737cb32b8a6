"""Export an embedding model as a SavedModel and a ``.keras`` file, each with a sidecar.

Layout of an export folder::

    OUT/model.json               the preprocessing the model expects (ModelInfo)
    OUT/model.keras              Keras archive (load with safe_mode=True)
    OUT/saved_model/             TF SavedModel, loadable without this package
    OUT/saved_model/model.json   a copy of the sidecar, so the SavedModel stands alone

The SavedModel takes RAW pixels ``(N, S, S, 3)`` RGB and returns L2-normalised embeddings:
signature ``serving_default`` (float32 0..255, also reachable as ``.serve``) and
``serve_uint8`` (uint8), both with input ``images`` and output ``embeddings``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import FacenetError, InputError
from facenet_cli.models.loading import (
    KERAS_FILE_NAME,
    SAVED_MODEL_DIR,
    EmbeddingModel,
    embed_tensor,
    embedding_fn,
    load_embedding_model,
)
from facenet_cli.models.sidecar import SIDECAR_NAME, ModelInfo, write_model_info

PARITY_TOLERANCE = 1e-5
NROF_SAMPLE_IMAGES = 8


class ParityError(FacenetError):
    """An exported model's embeddings differ from the in-memory model's."""


def sample_images(info: ModelInfo, n: int = NROF_SAMPLE_IMAGES, seed: int = 0) -> np.ndarray:
    """Deterministic raw-pixel test images (smooth gradients plus noise) for parity checks."""
    rng = np.random.default_rng(seed)
    size = info.image_size
    ramp = np.linspace(0.0, 255.0, size, dtype=np.float32)
    base = (ramp[None, :, None] + ramp[:, None, None]) / 2.0
    images = base[None] * rng.uniform(0.3, 1.0, (n, 1, 1, 3))
    images = images + rng.normal(0.0, 20.0, (n, size, size, 3))
    return np.clip(np.round(images), 0, 255).astype(np.float32)


def write_saved_model(keras_model: Any, info: ModelInfo, directory: Path) -> Path:
    """Write the raw-pixel embedding SavedModel (float32 and uint8 signatures) to ``directory``."""
    import keras
    import tensorflow as tf

    shape = (None, info.image_size, info.image_size, 3)
    archive = keras.export.ExportArchive()
    archive.track(keras_model)
    for name, dtype in (("serve", tf.float32), ("serve_uint8", tf.uint8)):
        archive.add_endpoint(
            name=name,
            fn=lambda images: {"embeddings": embed_tensor(keras_model, info, images)},
            input_signature=[tf.TensorSpec(shape, dtype, name="images")],
        )
    archive.write_out(str(directory), verbose=False)
    write_model_info(directory, info)
    return directory


def export_model(
    keras_model: Any,
    info: ModelInfo,
    out_dir: Path,
    sample_images: np.ndarray | None = None,
    check: bool = True,
) -> Path:
    """Export ``keras_model`` to ``out_dir`` (SavedModel + ``.keras`` + ``model.json``).

    The folder is written beside ``out_dir`` first and moved into place at the end, so a failed
    export never leaves a half-written folder. An existing ``out_dir`` is replaced only when it
    is empty or a previous export (holds a ``model.json``).

    Args:
        keras_model: a model from ``create_model`` (standardised images -> prelogits).
        info: its sidecar.
        out_dir: the export folder.
        sample_images: raw-pixel images for the parity check (default: ``sample_images(info)``).
        check: compare the exported models with the in-memory one (``check_parity``).

    Returns:
        ``out_dir``.

    Raises:
        InputError: ``out_dir`` exists and is something else.
        ParityError: an exported model's embeddings differ by more than 1e-5.
    """
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and (
        not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / SIDECAR_NAME).exists())
    ):
        raise InputError(f"{out_dir}: exists and is not an export folder; choose another OUT")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_saved_model(keras_model, info, staging / SAVED_MODEL_DIR)
        keras_model.save(staging / KERAS_FILE_NAME)
        write_model_info(staging, info)
        if check:
            check_parity(keras_model, info, staging, sample_images)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def check_parity(
    keras_model: Any,
    info: ModelInfo,
    export_dir: Path,
    images: np.ndarray | None = None,
    tolerance: float = PARITY_TOLERANCE,
) -> dict[str, float]:
    """Largest absolute embedding difference of each exported form against ``keras_model``.

    Checks the SavedModel's float32 and uint8 signatures and the reloaded ``.keras`` file.

    Returns:
        ``{"saved_model": d, "saved_model_uint8": d, "keras": d}``.

    Raises:
        ParityError: any difference exceeds ``tolerance``.
    """
    import tensorflow as tf

    pixels = sample_images(info) if images is None else np.asarray(images, np.float32)
    pixels = np.clip(np.round(pixels), 0, 255).astype(np.float32)  # exact in uint8 too
    reference = embedding_fn(keras_model, info)(pixels)
    loaded = tf.saved_model.load(str(export_dir / SAVED_MODEL_DIR))
    saved = loaded.serve(tf.constant(pixels))["embeddings"].numpy()
    saved_u8 = loaded.serve_uint8(tf.constant(pixels.astype(np.uint8)))["embeddings"].numpy()
    reloaded = load_embedding_model(export_dir / KERAS_FILE_NAME).embed(pixels)
    diffs = {
        "saved_model": float(np.max(np.abs(saved - reference))),
        "saved_model_uint8": float(np.max(np.abs(saved_u8 - reference))),
        "keras": float(np.max(np.abs(reloaded - reference))),
    }
    worst = max(diffs, key=lambda k: diffs[k])
    if not diffs[worst] <= tolerance:
        raise ParityError(
            f"{export_dir}: exported {worst} differs from the in-memory model by "
            f"{diffs[worst]:.3g} (> {tolerance:g})"
        )
    return diffs


def run_export(
    source: Path,
    out: Path,
    formats: Sequence[str] = (),
    representative: Path | None = None,
    max_representative: int = 200,
) -> Path:
    """``facenet export SOURCE OUT [--to FORMAT ...]``: write, reload and measure each form.

    Always writes the SavedModel, the ``.keras`` file and the sidecar; ``formats`` adds rows of
    ``export_formats.EXPORT_FORMATS`` (``pb``, ``onnx``, ``tflite``, ``tflite-fp16``,
    ``tflite-int8``) to the same folder, each loaded back and compared with the Keras model.
    A frozen graph of one of the original's networks is exported through a Keras model that
    takes its constants by name.

    Args:
        representative: a folder of face crops whose images calibrate ``tflite-int8`` (and
            are embedded by every parity check); default: synthetic images.
        max_representative: at most this many of them.

    Raises:
        InputError: ``source`` holds no Keras weights (a bare SavedModel, an ONNX or TFLite
            file, a frozen graph of an unknown network).
        ParityError, ExportParityError: an export's embeddings differ beyond its tolerance.
    """
    from facenet_cli.models.export_formats import export_format, write_format

    forms = [export_format(name) for name in dict.fromkeys(formats)]
    model = load_embedding_model(source)
    keras_model = _keras_model_of(model)
    info = model.info
    images = sample_images(info, 16)
    faces = None
    if representative is not None:
        faces = read_faces(representative, info.image_size, max_representative)
        images = faces[:16]
    export_model(keras_model, info, out, check=False)
    try:
        diffs = check_parity(keras_model, info, out, images)
        written = [write_format(form, keras_model, info, out, images, faces) for form in forms]
    except FacenetError:
        shutil.rmtree(out, ignore_errors=True)
        raise
    print(f"exported {model.source} ({info.model_def}, {info.embedding_size}-d, "
          f"{info.image_size} px, {info.standardization} standardization)")  # fmt: skip
    print(f"  SavedModel: {out / SAVED_MODEL_DIR}")
    print(f"  Keras:      {out / KERAS_FILE_NAME}")
    print(f"  sidecar:    {out / SIDECAR_NAME}")
    for form, (path, diff) in zip(forms, written, strict=True):
        print(f"  {form.name + ':':<12} {path}  (max |diff| vs Keras {diff:.1e})")
    what = "representative faces" if faces is not None else "synthetic images"
    print(f"  parity (max |diff| vs in-memory, {len(images)} {what}): "
          + ", ".join(f"{k} {v:.1e}" for k, v in diffs.items()))  # fmt: skip
    return out


def _keras_model_of(model: EmbeddingModel) -> Any:
    if model.keras_model is not None:
        return model.keras_model
    if model.kind == "frozen_graph":
        from facenet_cli.models.frozen_graph import load_frozen_weights
        from facenet_cli.models.loading import build_model
        from facenet_cli.models.tf1_import import TF1_ROOTS

        if model.info.model_def in TF1_ROOTS:
            keras_model = build_model(model.info)
            load_frozen_weights(keras_model, model.source)
            return keras_model
        raise InputError(
            f"{model.source}: a frozen graph of an unknown network cannot be re-exported "
            f"(known: {', '.join(TF1_ROOTS)})"
        )
    raise InputError(
        f"{model.source}: a bare {model.kind} holds no Keras weights to export; give a run, a "
        "checkpoint, an export or a .keras file"
    )


def read_faces(folder: Path, image_size: int, limit: int) -> np.ndarray:
    """Up to ``limit`` images under ``folder`` (sorted), centre-cropped or padded to size.

    Raises:
        InputError: no readable image under ``folder``.
    """
    import tensorflow as tf

    from facenet_cli.data.images import DecodeError, is_image, read_image

    found = (Path(d) / name for d, _, names in os.walk(folder, followlinks=True) for name in names)
    paths = sorted(p for p in found if is_image(p))[:limit]
    faces = []
    for path in paths:
        try:
            image = read_image(path)
        except DecodeError:
            continue  # a representative set only needs enough faces, not every file
        crop = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
        faces.append(np.asarray(crop, np.float32))
    if not faces:
        raise InputError(f"{folder}: no readable images for the representative set")
    return np.stack(faces)
