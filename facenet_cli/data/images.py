"""What is an image: class folders listed by content, and any image file decoded to RGB.

One rule for every command (``align``, ``train``, ``validate``, ``pairs``): a visible file in a
class folder is an image when OpenCV or Pillow can decode it, whatever its name. Listing stays
cheap on large datasets: a name ending in a known image extension (any case) is taken as an image
without opening the file (its content is checked once, when it is decoded: ``align`` lists a bad
one in ``failures.txt``, training drops it with a warning, validation names it in its error);
any other file (no extension, ``.txt``, an unknown extension) is opened once to read its first
bytes, and only when they match no known format is Pillow asked to identify it.

Decoding uses OpenCV (about twice as fast as Pillow on the demo photos and 250 px JPEGs, see
``benchmarks/bench_images.py``; it applies EXIF orientation itself) and falls back to Pillow for
the formats OpenCV does not read (TGA, ICO, ...) and to word the reason of a file neither reads.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

# OpenCV's own refusal of decompression bombs, aligned with Pillow's below; it is read when the
# library loads, so it is set before the first import.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "180000000")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402

# Refuse decompression bombs early but allow large camera photos (~180 MP).
Image.MAX_IMAGE_PIXELS = 180_000_000
# A file that fails to decode is reported by us, with its name; OpenCV's own warnings on stderr
# ("PNG input buffer is incomplete") would only repeat it without one.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

# Names taken as images without opening the file (lower case). Content decides for every other.
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".gif", ".tif", ".tiff",
        ".pgm", ".ppm", ".pnm", ".pbm", ".pam", ".pfm", ".jp2", ".j2k", ".sr", ".ras",
    }
)  # fmt: skip

# Leading bytes of the formats OpenCV or Pillow decode: (offset, magic).
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),  # JPEG
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (0, b"BM"),
    (0, b"II*\x00"),  # TIFF, little-endian
    (0, b"MM\x00*"),  # TIFF, big-endian
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n"),  # JPEG 2000 (JP2)
    (0, b"\xff\x4f\xff\x51"),  # JPEG 2000 codestream
    (0, b"\x59\xa6\x6a\x95"),  # Sun raster
    (0, b"8BPS"),  # Photoshop
    (0, b"#?RADIANCE"),
    (0, b"#?RGBE"),
)
_HEAD_BYTES = 16


@dataclass(frozen=True)
class ClassFolder:
    """The visible files of one class folder, sorted by name.

    ``images``: what decodes (or is named like an image: checked when decoded). ``non_images``:
    every other file, including entries that cannot be read at all (a dangling link).
    """

    images: tuple[Path, ...]
    non_images: tuple[Path, ...]
    subfolders: tuple[Path, ...] = ()  # not read: a class's images sit directly in its folder


class DecodeError(Exception):
    """An input that is not a usable image; the message is the reason (one line)."""


def has_image_name(name: str) -> bool:
    """True for a visible name ending in a known image extension (any case)."""
    return name[:1] != "." and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def looks_like_image(head: bytes) -> bool:
    """True when the first bytes of a file match a known image signature (Netpbm included)."""
    if any(head[o : o + len(m)] == m for o, m in _SIGNATURES):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    # Netpbm: "P1".."P7" then whitespace; PFM: "PF" / "Pf" then whitespace.
    netpbm = len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"1234567Ff"
    return netpbm and head[2:3].isspace()


def is_image(path: str | os.PathLike[str]) -> bool:
    """Whether a file decodes as an image, judged by its content (read once, a few bytes).

    Files whose first bytes match no signature are handed to Pillow's identification (formats
    without a signature, such as TGA); an unreadable path is not an image.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
            if looks_like_image(head):
                return True
            if not head:
                return False
            f.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with Image.open(f):
                    return True
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False


def scan_class_folder(folder: str | os.PathLike[str]) -> ClassFolder:
    """Split the visible files of one class folder into images and non-images.

    Hidden names (a leading dot: the aligner's temporary files, ``.DS_Store``) are ignored, and
    so are sub-folders unless named like an image. A name with an image extension is an image
    without being opened; any other file is judged by its content (``is_image``).

    Raises:
        OSError: the folder cannot be listed (callers word the error for their command).
    """
    images: list[Path] = []
    others: list[Path] = []
    subfolders: list[Path] = []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if entry.name[0] == ".":
            continue
        path = Path(entry.path)
        if has_image_name(entry.name):
            (images if _is_file(entry) else others).append(path)
        elif _is_file(entry):
            (images if is_image(path) else others).append(path)
        elif _is_dir(entry):
            subfolders.append(path)
        else:
            others.append(path)  # a dangling link or a special file: reported, not dropped
    return ClassFolder(tuple(images), tuple(others), tuple(subfolders))


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as ``uint8`` RGB ``(H, W, 3)``.

    EXIF orientation is applied; grey images get three identical channels; alpha is dropped (not
    composited, as the original aligner does); 16-bit and float images are scaled to 8 bits.

    Raises:
        DecodeError: the path is unreadable, empty, truncated, or not an image.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DecodeError(f"unreadable ({exc.strerror or type(exc).__name__})") from None
    return decode_bytes(data)


def decode_bytes(data: bytes) -> np.ndarray:
    """Decode the bytes of an image file to ``uint8`` RGB (see ``read_image``).

    Raises:
        DecodeError: empty, truncated, or not an image.
    """
    if not data:
        raise DecodeError("empty file (0 bytes)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB)
    except cv2.error:
        image = None
    if image is not None:
        return image
    # OpenCV could not: Pillow reads some formats OpenCV lacks and words the reason otherwise.
    return _decode_with_pillow(data)


def _decode_with_pillow(data: bytes) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns on odd EXIF; the image is still fine
            with Image.open(io.BytesIO(data)) as raw:
                raw.load()
                return to_rgb8(ImageOps.exif_transpose(raw))
    except UnidentifiedImageError:
        raise DecodeError("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(f"image too large ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DecodeError(f"truncated or corrupt image ({text})") from None


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
