"""Image input and output for alignment: tolerant decoding, crops, warps, atomic PNG writes."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facenet_cli.align import geometry as geo

# Refuse decompression bombs early but allow large camera photos (~180 MP).
Image.MAX_IMAGE_PIXELS = 180_000_000


class DecodeError(Exception):
    """An input that is not a usable image; the message is the reason written to ``failures``."""


def decode(path: Path) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``(H, W, 3)``.

    EXIF orientation is applied; grey images get three identical channels; alpha is dropped;
    16-bit and float images are scaled to 8 bits.

    Raises:
        DecodeError: the path is unreadable, empty, truncated, or not an image.
    """
    try:
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file (0 bytes)")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns on odd EXIF; the image is still fine
            with Image.open(path) as raw:
                raw.load()
                return to_rgb8(ImageOps.exif_transpose(raw))
    except DecodeError:
        raise
    except UnidentifiedImageError:
        raise DecodeError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, OSError) and exc.strerror:
            raise DecodeError(f"unreadable ({exc.strerror})") from None
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"truncated or corrupt image ({text})") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large ({exc})") from None


def to_rgb8(img: Image.Image) -> np.ndarray:
    """Any PIL mode to ``uint8`` RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit data (PNG "I" holds 16-bit values too); scale 0..65535 to 0..255.
        arr = np.clip(np.round(arr / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode == "F":
        arr = np.clip(np.round(np.asarray(img, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode in ("L", "LA", "1"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode != "RGB":
        # RGBA / LA / P / CMYK / YCbCr: alpha is dropped (not composited), as the original does.
        img = img.convert("RGBA").convert("RGB") if img.mode == "P" else img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


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
