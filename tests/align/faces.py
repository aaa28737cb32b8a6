"""Test images with real faces: ``skimage.data.astronaut()`` placed on larger canvases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# The astronaut's face in the 512x512 original, as the `mtcnn` package finds it (x1 y1 x2 y2).
ASTRONAUT_FACE = np.array([182.0, 64.0, 265.0, 171.0])


def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def place(
    canvas_hw: tuple[int, int],
    faces: list[tuple[float, int, int]],
    background: int = 90,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paste the astronaut at ``(scale, y, x)`` positions; return the image and true face boxes."""
    canvas = np.full((*canvas_hw, 3), background, np.uint8)
    src = astronaut()
    boxes = []
    for scale, y, x in faces:
        side = int(round(512 * scale))
        pic = np.asarray(Image.fromarray(src).resize((side, side), Image.Resampling.BILINEAR))
        h = min(side, canvas_hw[0] - y)
        w = min(side, canvas_hw[1] - x)
        canvas[y : y + h, x : x + w] = pic[:h, :w]
        f = side / 512
        boxes.append(ASTRONAUT_FACE * f + np.array([x, y, x, y]))
    return canvas, boxes


def write_dataset(
    root: Path,
    n_per_class: int = 3,
    classes=("alice", "bob"),
    seed: int = 0,
    canvas_hw: tuple[int, int] = (300, 360),
) -> dict[str, np.ndarray]:
    """A class-per-folder dataset of JPEGs, one astronaut each; returns true boxes by path."""
    rng = np.random.default_rng(seed)
    truth = {}
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            scale = float(rng.uniform(0.25, min(0.5, (min(canvas_hw) - 2) / 512)))
            side = int(round(512 * scale))
            y = int(rng.integers(0, canvas_hw[0] - side))
            x = int(rng.integers(0, canvas_hw[1] - side))
            img, boxes = place(canvas_hw, [(scale, y, x)])
            name = f"{cls}_{i + 1:04d}.jpg"
            Image.fromarray(img).save(root / cls / name, quality=92)
            truth[f"{cls}/{name}"] = boxes[0]
    return truth
