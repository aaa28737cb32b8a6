"""Make the bad-input corpus: broken images, odd paths, bad pairs and config files.

Nothing binary is checked in; ``make_bad_inputs(dest)`` writes everything under ``dest``:

- ``images/<kind>/<kind>_0001.<ext>``: one class folder per bad image kind (so each kind can be a
  dataset of its own, and ``images/`` is a dataset holding all of them), next to
  ``images/good/good_000N.png`` (plain valid images);
- ``odd_paths/``: valid images under names with spaces and non-ASCII characters;
- ``loops/``: symbolic-link loops (a file linking to itself, a folder linking to its parent);
- ``pairs_bad.txt``: a pairs file with malformed lines; ``config_bad_types.toml``: options of the
  wrong type; ``config_not_toml.toml``: not TOML at all.

Run ``python tests/data/bad/make_bad_inputs.py DEST`` to look at the corpus by hand.
"""

from __future__ import annotations

import os
import struct
import sys
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

# Kinds of broken images: each is the only file of images/<kind>/.
IMAGE_KINDS = (
    "zero_byte",
    "truncated_jpeg",
    "truncated_png",
    "text_as_jpg",
    "huge_png_header",
    "huge_jpeg_header",
    "one_pixel",
    "png16_grey",
    "png16_rgb",
    "cmyk_jpeg",
    "symlink_loop",
    "dangling_symlink",
)

# Kinds a decoder must reject (the others are odd but valid images: 1x1, 16-bit, CMYK).
UNDECODABLE = frozenset(IMAGE_KINDS) - {"one_pixel", "png16_grey", "png16_rgb", "cmyk_jpeg"}


@dataclass
class BadInputs:
    """Where each part of the corpus was written."""

    root: Path
    images: Path
    image_files: dict[str, Path] = field(default_factory=dict)
    odd_paths: Path | None = None
    odd_files: list[Path] = field(default_factory=list)
    loops: Path | None = None
    pairs_bad: Path | None = None
    config_bad_types: Path | None = None
    config_not_toml: Path | None = None


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw: bytes) -> bytes:
    """A PNG written by hand (any header, e.g. one claiming huge dimensions); raw = IDAT data."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _noise(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _jpeg(pixels: np.ndarray, mode: str = "RGB") -> bytes:
    buf = BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buf = BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def huge_jpeg_header(width: int = 60000, height: int = 60000) -> bytes:
    """A small JPEG whose frame header (SOF0) claims ``width x height``."""
    data = bytearray(_jpeg(_noise(16, 1)))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _image_bytes(kind: str) -> tuple[str, bytes | None]:
    """(extension, content) of one kind; None content for the symlink kinds."""
    pixels = _noise(40, 7)
    if kind == "zero_byte":
        return ".jpg", b""
    if kind == "truncated_jpeg":
        full = _jpeg(pixels)
        return ".jpg", full[: len(full) // 2]
    if kind == "truncated_png":
        full = _png(pixels)
        return ".png", full[: len(full) // 2]
    if kind == "text_as_jpg":
        return ".jpg", b"this is a text file, not a JPEG\n" * 4
    if kind == "huge_png_header":
        # 60000 x 60000 RGB claimed, one row of data: decoding must refuse, not allocate 10 GB.
        return ".png", png_bytes(60000, 60000, 8, 2, b"\x00" + b"\x80" * 30)
    if kind == "huge_jpeg_header":
        return ".jpg", huge_jpeg_header()
    if kind == "one_pixel":
        return ".png", _png(pixels[:1, :1])
    if kind == "png16_grey":
        grey = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
        buf = BytesIO()
        Image.fromarray(grey).save(buf, format="PNG")  # mode I;16
        return ".png", buf.getvalue()
    if kind == "png16_rgb":
        rows = b"".join(b"\x00" + (pixels[y].astype(">u2") * 257).tobytes() for y in range(40))
        return ".png", png_bytes(40, 40, 16, 2, rows)
    if kind == "cmyk_jpeg":
        return ".jpg", _jpeg(pixels, mode="CMYK")
    return ".jpg", None


def make_bad_images(images: Path) -> dict[str, Path]:
    """``images/<kind>/<kind>_0001.<ext>`` for every kind, and three valid ``good`` images."""
    files: dict[str, Path] = {}
    for kind in IMAGE_KINDS:
        ext, content = _image_bytes(kind)
        folder = images / kind
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{kind}_0001{ext}"
        if kind == "symlink_loop":
            os.symlink(path.name, path)  # loop.jpg -> loop.jpg: ELOOP on open
        elif kind == "dangling_symlink":
            os.symlink("does-not-exist.jpg", path)
        else:
            assert content is not None
            path.write_bytes(content)
        files[kind] = path
    good = images / "good"
    good.mkdir(parents=True, exist_ok=True)
    for i in range(1, 4):
        (good / f"good_{i:04d}.png").write_bytes(_png(_noise(40, 10 + i)))
    return files


def make_odd_paths(root: Path) -> list[Path]:
    """Valid images under class and file names with spaces and non-ASCII characters."""
    out = []
    for cls, names in {
        "José María": ["José María_0001.jpg", "José María_0002.png"],
        "with space": ["with space_0001.png", "with space_0002.png"],
        "名前": ["名前_0001.png", "名前_0002.jpg"],
        "Zoë": ["Zoë_0001.png", "Zoë_0002.png"],
    }.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            pixels = _noise(40, 100 + i + len(out))
            path = root / cls / name
            path.write_bytes(_jpeg(pixels) if name.endswith(".jpg") else _png(pixels))
            out.append(path)
    return out


def make_loops(root: Path) -> Path:
    """A dataset whose class folder links to its parent and whose image links to itself."""
    cls = root / "loopy"
    cls.mkdir(parents=True, exist_ok=True)
    (cls / "loopy_0001.png").write_bytes(_png(_noise(40, 3)))
    os.symlink("..", cls / "parent")  # a directory loop for any recursive walk
    os.symlink("self_0001.jpg", cls / "self_0001.jpg")
    os.symlink("loop_b", root / "loop_a")  # class folders that link to each other
    os.symlink("loop_a", root / "loop_b")
    return root


PAIRS_BAD = """10\t300
Aaron_Peirsol\t1\t2
Aaron_Peirsol\tone\t2
Abdullah\t1
Abdullah\t1\tAbel_Pacheco\t2\textra
"""

CONFIG_BAD_TYPES = """batch_size = "ninety"
image_size = [160]
random_flip = "sometimes"
learning_rate = "fast"
"""

CONFIG_NOT_TOML = "batch_size: 90\nimage_size = = 160\n[unclosed\n"


def make_bad_inputs(dest: Path) -> BadInputs:
    """Write the whole corpus under ``dest`` (created); returns where each part is."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = BadInputs(root=dest, images=dest / "images")
    out.image_files = make_bad_images(out.images)
    out.odd_paths = dest / "odd paths ü"
    out.odd_files = make_odd_paths(out.odd_paths)
    out.loops = make_loops(dest / "loops")
    out.pairs_bad = dest / "pairs_bad.txt"
    out.pairs_bad.write_text(PAIRS_BAD)
    out.config_bad_types = dest / "config_bad_types.toml"
    out.config_bad_types.write_text(CONFIG_BAD_TYPES)
    out.config_not_toml = dest / "config_not_toml.toml"
    out.config_not_toml.write_text(CONFIG_NOT_TOML)
    return out


def make_unreadable(path: Path) -> bool:
    """``chmod 000`` a file; returns whether that really stops this process reading it.

    It does not for root (or with CAP_DAC_OVERRIDE), where tests using it must skip.
    """
    os.chmod(path, 0)
    try:
        with open(path, "rb"):
            return False
    except PermissionError:
        return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_bad_inputs.py DEST")
    made = make_bad_inputs(Path(sys.argv[1]))
    for kind, p in made.image_files.items():
        print(f"{kind:18s} {p}")
