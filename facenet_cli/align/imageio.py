"""Image input and output for alignment: decoding, crops, warps, atomic PNG writes."""

from __future__ import annotations

import os
from pathlib import Path

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
    """Crop ``image[y1:y2, x1:x2]`` and resize to a square (bilinear, antialiased)."""
    crop = image[bb[1] : bb[3], bb[0] : bb[2]]
    return np.asarray(
        Image.fromarray(crop).resize((image_size, image_size), Image.Resampling.BILINEAR)
    )


def warp_similarity(
    image: np.ndarray, landmarks: np.ndarray, image_size: int, margin: int
) -> np.ndarray:
    """Warp the face so its 5 landmarks best fit the canonical template (bilinear).

    Large downscales are pre-shrunk with an antialiased resize so the warp does not alias.
    """
    dst = geo.template_points(image_size, margin)
    m = geo.similarity_transform(landmarks, dst)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    src = Image.fromarray(image)
    if scale < 0.5:
        shrink = min(1.0, 2.0 * scale)
        size = (
            max(int(round(image.shape[1] * shrink)), 1),
            max(int(round(image.shape[0] * shrink)), 1),
        )
        src = src.resize(size, Image.Resampling.BILINEAR)
        fx, fy = size[0] / image.shape[1], size[1] / image.shape[0]
        m = geo.similarity_transform(landmarks * np.array([fx, fy]), dst)
    inv = geo.invert_affine(m)
    out = src.transform(
        (image_size, image_size),
        Image.Transform.AFFINE,
        tuple(inv.ravel()),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(out)


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
