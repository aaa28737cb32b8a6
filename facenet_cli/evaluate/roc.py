"""Writing and drawing an ROC: CSV, a PNG plot (Pillow) and a small plot for the terminal."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from facenet_cli.errors import StorageError


def write_roc_csv(path: str | os.PathLike[str], thresholds, fpr, tpr) -> Path:
    """Write ``threshold,fpr,tpr`` rows (one per grid threshold) to ``path``.

    Raises:
        StorageError: the file cannot be written.
    """
    path = Path(path)
    lines = ["threshold,fpr,tpr"]
    lines += [f"{t:.6g},{f:.10g},{p:.10g}" for t, f, p in zip(thresholds, fpr, tpr, strict=True)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ROC ({exc.strerror or exc})") from None
    return path


def write_roc_png(
    path: str | os.PathLike[str],
    fpr,
    tpr,
    *,
    title: str = "ROC",
    auc: float | None = None,
    eer: float | None = None,
    size: int = 480,
) -> Path:
    """Draw the ROC (linear axes, chance diagonal, EER point) to a PNG with Pillow.

    Raises:
        StorageError: the file cannot be written.
    """
    from PIL import Image, ImageDraw

    path = Path(path)
    margin_left, margin_bottom, margin_top, margin_right = 56, 44, 48, 16
    width, height = size, size
    plot_w = width - margin_left - margin_right
    plot_h = height - margin_top - margin_bottom
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)

    def to_px(x: float, y: float) -> tuple[float, float]:
        return margin_left + x * plot_w, margin_top + (1.0 - y) * plot_h

    for i in range(11):
        v = i / 10
        gx, _ = to_px(v, 0)
        _, gy = to_px(0, v)
        grid = (225, 225, 225)
        draw.line([to_px(v, 0), to_px(v, 1)], fill=grid)
        draw.line([to_px(0, v), to_px(1, v)], fill=grid)
        if i % 2 == 0:
            draw.text((gx - 8, height - margin_bottom + 6), f"{v:.1f}", fill="black")
            draw.text((margin_left - 30, gy - 6), f"{v:.1f}", fill="black")
    draw.rectangle([to_px(0, 1), to_px(1, 0)], outline="black")
    draw.line([to_px(0, 0), to_px(1, 1)], fill=(170, 170, 170))
    xs = np.concatenate(([0.0], np.asarray(fpr, float), [1.0]))
    ys = np.concatenate(([0.0], np.asarray(tpr, float), [1.0]))
    draw.line([to_px(x, y) for x, y in zip(xs, ys, strict=True)], fill=(31, 90, 200), width=2)
    if eer is not None and math.isfinite(eer):
        ex, ey = to_px(eer, 1.0 - eer)
        draw.ellipse([ex - 4, ey - 4, ex + 4, ey + 4], outline=(200, 40, 40), width=2)
    label = title
    if auc is not None:
        label += f"   AUC {auc:.4f}"
    if eer is not None:
        label += f"   EER {eer:.4f}"
    draw.text((margin_left, 10), label, fill="black")
    draw.text((margin_left + plot_w // 2 - 60, height - 22), "false positive rate", fill="black")
    draw.text((6, margin_top - 16), "true positive rate", fill="black")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, format="PNG")
    except OSError as exc:
        raise StorageError(f"{path}: cannot write ROC plot ({exc.strerror or exc})") from None
    return path


def terminal_roc(fpr, tpr, *, width: int = 44, height: int = 10, min_fpr: float = 1e-3) -> str:
    """A small ROC in text: TPR against FPR on a log axis from ``min_fpr`` to 1.

    The log axis shows the low-FAR region where face verification is judged; a linear one
    would squash a good model into the top-left corner.
    """
    fpr = np.asarray(fpr, float)
    tpr = np.asarray(tpr, float)
    xs = np.concatenate(([0.0], fpr, [1.0]))
    ys = np.concatenate(([0.0], tpr, [1.0]))
    lo, hi = math.log10(min_fpr), 0.0
    cols = 10 ** (lo + (hi - lo) * (np.arange(width) + 0.5) / width)
    # Best TPR reachable at or below each FPR: the curve's upper envelope at that column.
    best = np.array([ys[xs <= c].max() if np.any(xs <= c) else 0.0 for c in cols])
    rows = np.clip(np.round(best * (height - 1)).astype(int), 0, height - 1)
    grid = [[" "] * width for _ in range(height)]
    for col, row in enumerate(rows):
        grid[height - 1 - row][col] = "*"
        for below in range(row):
            if grid[height - 1 - below][col] == " ":
                grid[height - 1 - below][col] = "."
    lines = []
    for r, cells in enumerate(grid):
        y = 1.0 - r / (height - 1)
        label = f"{y:4.2f}" if r in (0, height // 2, height - 1) else "    "
        lines.append(f"{label} |{''.join(cells)}")
    lines.append("     +" + "-" * width)
    ticks = [" "] * (width + 6)
    for exp in range(int(lo), 1):
        pos = 6 + int((exp - lo) / (hi - lo) * (width - 1))
        text = f"{10.0**exp:g}"
        for k, ch in enumerate(text):
            if pos + k < len(ticks):
                ticks[pos + k] = ch
    lines.append("".join(ticks).rstrip() + "   FPR (log)")
    return "\n".join(lines)
