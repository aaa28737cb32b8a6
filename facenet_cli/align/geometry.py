"""Crop geometry and MTCNN box arithmetic: pure numpy, arrays in and arrays out.

Boxes are float rows ``x1 y1 x2 y2`` in pixels of the original image; landmarks are ``(5, 2)``
``(x, y)`` points ordered left eye, right eye, nose, left mouth corner, right mouth corner (left
and right as seen in the image).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# PNet reads 12x12 windows with stride 2 (one conv, a 2x2 pool, two more convs).
PNET_CELL = 12
PNET_STRIDE = 2

# The canonical 5-point template of a 112x112 face crop (ArcFace / InsightFace), in the order
# left eye, right eye, nose, left mouth corner, right mouth corner.
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


def pyramid_scales(
    height: int, width: int, min_face_size: int = 20, factor: float = 0.709
) -> np.ndarray:
    """Scales of the MTCNN image pyramid (the original's loop).

    The first scale maps ``min_face_size`` to the 12 px PNet window; each next one multiplies by
    ``factor`` while the scaled shorter side stays at least 12 px.
    """
    m = PNET_CELL / min_face_size
    min_side = min(height, width) * m
    scales = []
    scale = m
    while min_side >= PNET_CELL:
        scales.append(scale)
        scale *= factor
        min_side *= factor
    return np.asarray(scales, dtype=np.float64)


def level_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """Pixel size of a pyramid level (truncated, as ``tf.image.resize`` does with float sizes)."""
    return int(height * scale), int(width * scale)


def pnet_cells(size: int) -> int:
    """Number of PNet output cells along a side of ``size`` input pixels (0 when too small)."""
    return max((size - 1) // 2 - 4, 0)


@dataclass(frozen=True)
class Placement:
    """Where one pyramid level sits inside a mosaic canvas."""

    canvas: int
    y: int
    x: int
    height: int
    width: int


def pack_levels(
    shapes: list[tuple[int, int]], max_canvas_pixels: int = 2_000_000
) -> tuple[list[Placement], list[tuple[int, int]]]:
    """Shelf-pack pyramid levels into few canvases so PNet runs once per canvas.

    Every level starts at even coordinates (PNet's stride is 2, so its output cells line up with
    each level's own grid) and takes an even-rounded footprint. Only the cells whose whole 12x12
    window lies inside a level are read back, so neighbours never leak into a detection.

    Args:
        shapes: ``(height, width)`` of each level.
        max_canvas_pixels: soft limit on one canvas's area (bounds PNet's activation memory).

    Returns:
        One ``Placement`` per input shape (same order) and the ``(height, width)`` of each canvas.
    """
    if not shapes:
        return [], []
    even = [(h + h % 2, w + w % 2) for h, w in shapes]
    total = sum(h * w for h, w in even)
    widest = max(w for _, w in even)
    canvas_w = max(widest, int(math.sqrt(min(total, max_canvas_pixels)) * 1.1) // 2 * 2)
    max_h = max(max(h for h, _ in even), max_canvas_pixels // canvas_w)
    order = sorted(range(len(shapes)), key=lambda i: (-even[i][0], -even[i][1], i))
    placements: list[Placement | None] = [None] * len(shapes)
    canvases: list[tuple[int, int]] = []
    canvas = -1
    shelf_y = shelf_h = cursor_x = 0
    used_w = 0
    for i in order:
        h, w = even[i]
        if canvas < 0 or cursor_x + w > canvas_w:
            # New shelf; new canvas when the shelf would not fit under the height limit.
            shelf_y += shelf_h
            cursor_x, shelf_h = 0, h
            if canvas < 0 or shelf_y + h > max_h:
                if canvas >= 0:
                    canvases.append((shelf_y, used_w))
                canvas += 1
                shelf_y, used_w = 0, 0
        placements[i] = Placement(canvas, shelf_y, cursor_x, shapes[i][0], shapes[i][1])
        cursor_x += w
        used_w = max(used_w, cursor_x)
    canvases.append((shelf_y + shelf_h, used_w))
    return [p for p in placements if p is not None], canvases


def pnet_boxes(
    rows: np.ndarray, cols: np.ndarray, reg: np.ndarray, scale: np.ndarray
) -> np.ndarray:
    """Boxes of PNet hits in original pixels.

    Args:
        rows, cols: cell indices of the hits in their level's own output grid.
        reg: ``(N, 4)`` PNet regression ``dx1 dy1 dx2 dy2`` (fractions of the 11 px window).
        scale: ``(N,)`` pyramid scale of each hit.
    """
    x1 = cols * PNET_STRIDE + 1
    y1 = rows * PNET_STRIDE + 1
    x2 = cols * PNET_STRIDE + PNET_CELL
    y2 = rows * PNET_STRIDE + PNET_CELL
    side = PNET_CELL - 1
    boxes = np.stack(
        [
            x1 + reg[:, 0] * side,
            y1 + reg[:, 1] * side,
            x2 + reg[:, 2] * side,
            y2 + reg[:, 3] * side,
        ],
        axis=1,
    )
    return boxes / scale[:, None]


def pairwise_overlap(boxes: np.ndarray, other: np.ndarray, method: str = "union") -> np.ndarray:
    """Overlap matrix ``(len(boxes), len(other))``: IoU (``union``) or intersection/min area."""
    area_a = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_b = (other[:, 2] - other[:, 0]) * (other[:, 3] - other[:, 1])
    iw = np.minimum(boxes[:, None, 2], other[None, :, 2]) - np.maximum(
        boxes[:, None, 0], other[None, :, 0]
    )
    ih = np.minimum(boxes[:, None, 3], other[None, :, 3]) - np.maximum(
        boxes[:, None, 1], other[None, :, 1]
    )
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    if method == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    elif method == "min":
        denom = np.minimum(area_a[:, None], area_b[None, :])
    else:
        raise ValueError(f"unknown overlap method {method!r}")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = inter / denom
    return np.nan_to_num(out, nan=0.0)


def suppress(
    boxes: np.ndarray, threshold: float, method: str = "union", block: int = 1024
) -> np.ndarray:
    """Non-maximum suppression of boxes already sorted by descending score.

    Matches the `mtcnn` package: a box is dropped when ANY higher-scoring box overlaps it by more
    than ``threshold`` (whether or not that box survived). Computed in column blocks so memory
    stays ``O(N * block)``.

    Returns:
        Indices of the kept boxes, in order.
    """
    n = len(boxes)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    for start in range(1, n, block):
        stop = min(start + block, n)
        ov = pairwise_overlap(boxes[:stop], boxes[start:stop], method)
        earlier = np.arange(stop)[:, None] < np.arange(start, stop)[None, :]
        keep[start:stop] = ~np.any((ov > threshold) & earlier, axis=0)
    return np.flatnonzero(keep)


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square of its longer side about the same centre."""
    out = boxes.copy()
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + w * 0.5 - side * 0.5
    out[:, 1] = boxes[:, 1] + h * 0.5 - side * 0.5
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def regress_boxes(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Apply R/O-Net offsets (fractions of ``side + 1``) to boxes."""
    w = boxes[:, 2] - boxes[:, 0] + 1
    h = boxes[:, 3] - boxes[:, 1] + 1
    return boxes + offsets * np.stack([w, h, w, h], axis=1)


def onet_landmarks(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """ONet's 10 landmark outputs (``x0..x4, y0..y4`` relative) to ``(N, 5, 2)`` pixels."""
    w = boxes[:, 2:3] - boxes[:, 0:1] + 1
    h = boxes[:, 3:4] - boxes[:, 1:2] + 1
    xs = w * points[:, 0:5] + boxes[:, 0:1] - 1
    ys = h * points[:, 5:10] + boxes[:, 1:2] - 1
    return np.stack([xs, ys], axis=2)


def central_face_index(boxes: np.ndarray, height: int, width: int) -> int:
    """The original's choice of one face: maximise ``area - 2 * |centre offset|^2``."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    dx = (boxes[:, 0] + boxes[:, 2]) / 2 - width / 2
    dy = (boxes[:, 1] + boxes[:, 3]) / 2 - height / 2
    return int(np.argmax(area - 2.0 * (dx * dx + dy * dy)))


def margin_box(box: np.ndarray, margin: int, height: int, width: int) -> np.ndarray:
    """The original's crop: box grown by ``margin / 2`` per side, clipped, truncated to int."""
    out = np.zeros(4, dtype=np.int32)
    out[0] = np.maximum(box[0] - margin / 2, 0)
    out[1] = np.maximum(box[1] - margin / 2, 0)
    out[2] = np.minimum(box[2] + margin / 2, width)
    out[3] = np.minimum(box[3] + margin / 2, height)
    return out


def template_points(image_size: int, margin: int = 0) -> np.ndarray:
    """The canonical 5-point template for a square crop of ``image_size`` px.

    ``margin`` (output pixels, half per side) shrinks the template about the crop centre, so a
    larger margin shows more of the head, as in ``crop`` mode.
    """
    pts = TEMPLATE_112 * (image_size / 112.0)
    shrink = image_size / (image_size + margin)
    centre = image_size / 2.0
    return centre + (pts - centre) * shrink


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` to ``dst``.

    Umeyama's closed form. Returns a ``(2, 3)`` matrix ``M`` with ``dst ~ M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        fix[1, 1] = -1.0
    rot = u @ fix @ vt
    var_s = (s0**2).sum() / len(src)
    scale = (sig * np.diag(fix)).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a ``(2, 3)`` affine matrix."""
    a = m[:, :2]
    inv = np.linalg.inv(a)
    return np.hstack([inv, -(inv @ m[:, 2:3])])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``x1 y1 x2 y2`` boxes."""
    return float(pairwise_overlap(np.asarray(a, float)[None], np.asarray(b, float)[None])[0, 0])


@dataclass(frozen=True)
class Tile:
    """A piece of one pyramid level that PNet scores on its own.

    ``row0``/``col0`` are the level's first output cell inside the tile; the tile spans the pixels
    ``[2 * row0, 2 * row0 + height)`` x ``[2 * col0, 2 * col0 + width)`` of the level.
    """

    row0: int
    col0: int
    height: int
    width: int


def _spans(size: int, max_side: int) -> list[tuple[int, int]]:
    """``(first cell, pixel extent)`` pieces covering every PNet cell along one side."""
    total = pnet_cells(size)
    per = max((max_side - (PNET_CELL - PNET_STRIDE)) // PNET_STRIDE, 1)
    if total <= per:
        return [(0, size)]
    # The last piece runs to the level's edge, where an odd size gives PNet's pooling a padded
    # last window, exactly as on the whole level.
    return [
        (c, PNET_STRIDE * per + PNET_CELL - PNET_STRIDE if c + per < total else size - 2 * c)
        for c in range(0, total, per)
    ]


def split_level(height: int, width: int, max_side: int) -> list[Tile]:
    """Cut a pyramid level into overlapping tiles of at most ``max_side`` px per side.

    PNet's output cell ``r`` reads the level's rows ``2r .. 2r + 11`` and nothing else, so a tile
    that starts on an even pixel and spans ``2n + 10`` px yields exactly ``n`` of the level's cells,
    unchanged; consecutive tiles overlap by 10 px, the last one ends at the level's edge, and every
    cell comes from exactly one tile. A level that fits is one tile. On a CPU, PNet runs about
    three times faster per pixel on canvases of a quarter megapixel than on one of 2 MP (its
    activations stay in cache), which is what this is for.
    """
    return [
        Tile(r0, c0, h, w)
        for r0, h in _spans(height, max_side)
        for c0, w in _spans(width, max_side)
    ]
