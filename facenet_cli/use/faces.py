"""Faces of a photo, cut with the geometry of the model's training data.

A model embeds crops like the ones it was trained on: MTCNN box plus margin (or the similarity
warp), resized to the aligned size, then centre-cropped to the model's input. The aligned size,
margin and mode come from the model's ``model.json``; a model trained before they were recorded
there finds them in the alignment journal of its training data (named by the run's
``config.toml``); failing both, the original ``compare.py``'s margin of 44 px around a crop of the
model's input size is used.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet_cli.align.journal import journal_alignment
from facenet_cli.models.sidecar import ModelInfo

DEFAULT_MARGIN = 44  # the original compare.py's default


@dataclass(frozen=True)
class Alignment:
    """How training crops were cut.

    Attributes:
        image_size: side of the aligned crop.
        margin: margin around the box, original pixels.
        mode: ``crop`` or ``similarity``.
        source: where the settings come from (shown to the user).
    """

    image_size: int
    margin: int
    mode: str = "crop"
    source: str = "model.json"


def model_alignment(info: ModelInfo, model_source: Path | None = None) -> Alignment:
    """The crop geometry for a model: its sidecar, its run's training data, or the default."""
    if info.align_image_size is not None and info.align_margin is not None:
        return Alignment(info.align_image_size, info.align_margin, info.align_mode or "crop")
    if model_source is not None:
        source = Path(model_source)
        for folder in (source, source.parent):
            config = folder / "config.toml"
            if config.is_file():
                try:
                    data_dir = tomllib.loads(config.read_text()).get("data_dir")
                except (OSError, tomllib.TOMLDecodeError):
                    break
                settings = journal_alignment(data_dir)
                if settings is not None:
                    return Alignment(
                        int(settings["image_size"]),
                        int(settings["margin"]),
                        str(settings.get("mode", "crop")),
                        source=f"alignment journal of {data_dir}",
                    )
                break
    return Alignment(info.image_size, DEFAULT_MARGIN, "crop", source="default")


@dataclass(frozen=True)
class PhotoFaces:
    """The faces cut from one photo.

    Attributes:
        path: the photo.
        crops: ``(F, S, S, 3)`` uint8 crops at the model's input size (F = 0 when none).
        boxes: ``(F, 4)`` int margin boxes in the photo.
        reason: why there is no face (None when ``crops`` is not empty).
    """

    path: Path
    crops: np.ndarray
    boxes: np.ndarray
    reason: str | None = None


def centre_crop(crop: np.ndarray, size: int) -> np.ndarray:
    """The centre ``size`` x ``size`` of a crop, zero-padded when it is smaller (as tf.data's
    ``resize_with_crop_or_pad`` does for training and validation)."""
    h, w = crop.shape[:2]
    out = np.zeros((size, size, crop.shape[2]), crop.dtype)
    sy, sx = max((h - size) // 2, 0), max((w - size) // 2, 0)
    dy, dx = max((size - h) // 2, 0), max((size - w) // 2, 0)
    ch, cw = min(size, h), min(size, w)
    out[dy : dy + ch, dx : dx + cw] = crop[sy : sy + ch, sx : sx + cw]
    return out


def cut_faces(
    image: np.ndarray,
    boxes: np.ndarray,
    landmarks: np.ndarray,
    alignment: Alignment,
    input_size: int,
    *,
    all_faces: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Crops of the detected faces (the most central one unless ``all_faces``), as ``align``
    cuts them, centre-cropped to the model's input size.

    Returns:
        ``(crops (F, S, S, 3) uint8, boxes (F, 4) int)``.
    """
    from facenet_cli.align import geometry as geo
    from facenet_cli.align.imageio import crop_resize, warp_similarity

    h, w = image.shape[:2]
    if len(boxes) == 0:
        return np.zeros((0, input_size, input_size, 3), np.uint8), np.zeros((0, 4), np.int32)
    chosen = range(len(boxes)) if all_faces else [geo.central_face_index(boxes, h, w)]
    crops, kept = [], []
    for i in chosen:
        bb = geo.margin_box(boxes[i], alignment.margin, h, w)
        if bb[2] - bb[0] < 2 or bb[3] - bb[1] < 2:
            continue
        if alignment.mode == "similarity":
            pixels = warp_similarity(image, landmarks[i], alignment.image_size, alignment.margin)
        else:
            pixels = crop_resize(image, bb, alignment.image_size)
        crops.append(centre_crop(pixels, input_size))
        kept.append(bb)
    if not crops:
        return np.zeros((0, input_size, input_size, 3), np.uint8), np.zeros((0, 4), np.int32)
    return np.stack(crops), np.stack(kept).astype(np.int32)


def detect_photos(
    paths: list[Path], alignment: Alignment, input_size: int, *, all_faces: bool = False
) -> list[PhotoFaces]:
    """Read, detect and cut every photo; a photo that fails says why instead of raising."""
    from facenet_cli.align.detector import shared_detector
    from facenet_cli.align.imageio import DecodeError, decode
    from facenet_cli.config import AlignConfig

    config_min_face = AlignConfig().min_face_size
    images: dict[int, np.ndarray] = {}
    out: list[PhotoFaces | None] = [None] * len(paths)
    empty = np.zeros((0, input_size, input_size, 3), np.uint8)
    for k, path in enumerate(paths):
        try:
            image = decode(Path(path))
        except DecodeError as exc:
            out[k] = PhotoFaces(Path(path), empty, np.zeros((0, 4), np.int32), str(exc))
            continue
        if min(image.shape[:2]) < config_min_face:
            h, w = image.shape[:2]
            out[k] = PhotoFaces(
                Path(path), empty, np.zeros((0, 4), np.int32), f"image too small ({w}x{h} px)"
            )
            continue
        images[k] = image
    if images:
        detector = shared_detector(config_min_face)
        order = list(images)
        for k, det in zip(order, detector.detect([images[k] for k in order]), strict=True):
            crops, boxes = cut_faces(
                images[k], det.boxes, det.landmarks, alignment, input_size, all_faces=all_faces
            )
            reason = None if len(crops) else "no face found"
            out[k] = PhotoFaces(Path(paths[k]), crops, boxes, reason)
    return [p for p in out if p is not None]
