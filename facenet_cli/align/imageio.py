"""Image input and output for alignment: decoding, crops, warps, atomic PNG writes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from facenet_cli.align import geometry as geo
from facenet_cli.data.images import DecodeError, read_image, to_rgb8

__all__ = ["DecodeError", "crop_resize", "decode", "to_rgb8", "warp_similarity", "write_png_atomic"]


def decode(path: Path) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``(H, W, 3)`` (see ``data.images.read_image``).

    Raises:
        DecodeError: the path is unreadable, empty, truncated, or not an image.
    """
    return read_image(path)


def crop_resize(image: np.ndarray, bb: np.ndarray, image_size: int) -> np.ndarray:
    """Crop ``image[y1:y2, x1:x2]`` and resize to a square.

    OpenCV (faster than Pillow here, see ``benchmarks/bench_images.py``): area averaging when
    shrinking (antialiased), bilinear when enlarging.
    """
    crop = image[bb[1] : bb[3], bb[0] : bb[2]]
    return _resize(crop, image_size, image_size)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    shrink = width < image.shape[1] or height < image.shape[0]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.ascontiguousarray(cv2.resize(image, (width, height), interpolation=interpolation))


def warp_similarity(
    image: np.ndarray, landmarks: np.ndarray, image_size: int, margin: int
) -> np.ndarray:
    """Warp the face so its 5 landmarks best fit the canonical template (bilinear, OpenCV).

    Large downscales are pre-shrunk with an antialiased resize so the warp does not alias.
    """
    dst = geo.template_points(image_size, margin)
    m = geo.similarity_transform(landmarks, dst)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = image
    if scale < 0.5:
        shrink = min(1.0, 2.0 * scale)
        width = max(int(round(image.shape[1] * shrink)), 1)
        height = max(int(round(image.shape[0] * shrink)), 1)
        src = _resize(image, width, height)
        fx, fy = width / image.shape[1], height / image.shape[0]
        m = geo.similarity_transform(landmarks * np.array([fx, fy]), dst)
    return cv2.warpAffine(
        np.ascontiguousarray(src),
        m,
        (image_size, image_size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def write_png_atomic(path: Path, pixels: np.ndarray, tag: str = "") -> None:
    """Write a PNG under a temporary name in the same folder, then rename it into place."""
    tmp = tmp_name(path, tag)
    try:
        Image.fromarray(pixels).save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def tmp_name(path: Path, tag: str = "") -> Path:
    """The temporary sibling used while writing ``path`` (recognisable for clean-up)."""
    return path.with_name(f".{path.name}.{tag}.{os.getpid()}.tmp")


def is_tmp_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")
