"""The worst pairs of an evaluation: false accepts and false rejects at the protocol's thresholds.

Each pair is judged as the protocol judged it: its distance against the threshold chosen on
the training folds of the fold it is tested in ("same" iff distance < threshold). The false
accepts come nearest first, the false rejects farthest first: the most confident mistakes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import StorageError
from facenet_cli.evaluate.metrics import fold_indices
from facenet_cli.evaluate.pairs_embedding import ValidationReport


@dataclass(frozen=True)
class WorstPair:
    """One misjudged pair.

    Attributes:
        kind: ``false_accept`` (a mismatched pair judged the same) or ``false_reject``.
        pair: index among the evaluated pairs.
        images: the two images' names.
        distance: the distance the protocol compared.
        threshold: its fold's threshold.
    """

    kind: str
    pair: int
    images: tuple[str, str]
    distance: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "pair": self.pair, "image1": self.images[0],
                "image2": self.images[1], "distance": round(self.distance, 6),
                "threshold": round(self.threshold, 6)}  # fmt: skip


def pair_thresholds(best_thresholds: np.ndarray, nrof_pairs: int) -> np.ndarray:
    """Per pair, the threshold of the fold it is tested in (contiguous folds)."""
    out = np.empty(nrof_pairs, np.float64)
    for k, test in enumerate(fold_indices(nrof_pairs, len(best_thresholds))):
        out[test] = best_thresholds[k]
    return out


def worst_indices(
    distances: np.ndarray, thresholds: np.ndarray, issame: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` most confident false accepts (nearest first) and false rejects (farthest first).

    Returns:
        ``(false_accepts, false_rejects)``: pair indices; ties keep pair order.
    """
    accepted = distances < thresholds
    fa = np.flatnonzero(accepted & ~issame)
    fr = np.flatnonzero(~accepted & issame)
    fa = fa[np.argsort(distances[fa], kind="stable")][:n]
    fr = fr[np.argsort(-distances[fr], kind="stable")][:n]
    return fa, fr


def worst_pairs(report: ValidationReport, n: int) -> list[WorstPair]:
    """The worst ``n`` false accepts, then the worst ``n`` false rejects, of ``report``.

    Args:
        report: carries the per-pair distances, labels and image names.
        n: how many of each kind.
    """
    issame = report.issame
    if report.distances is None or report.pair_images is None or issame is None:
        return []
    r = report.result
    thresholds = pair_thresholds(r.best_thresholds, r.nrof_pairs)
    dist = report.distances[: r.nrof_pairs]
    fa, fr = worst_indices(dist, thresholds, np.asarray(issame[: r.nrof_pairs], bool), n)
    return [
        WorstPair(kind, int(i), report.pair_images[i], float(dist[i]), float(thresholds[i]))
        for kind, idx in (("false_accept", fa), ("false_reject", fr))
        for i in idx
    ]


def _tile(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.asarray(
        Image.fromarray(image[:, :, :3]).resize((size, size), Image.Resampling.BILINEAR)
    )


def write_contact_sheet(
    path: str | os.PathLike[str],
    pairs: Sequence[WorstPair],
    load: Callable[[str], np.ndarray],
    *,
    tile: int = 96,
    title: str = "",
) -> Path:
    """A PNG with one row per pair: its two images and a caption (kind, distance, threshold).

    Args:
        path: the PNG to write.
        pairs: from :func:`worst_pairs`.
        load: image name -> uint8 RGB (a file, or a pack's image).
        tile: side of each image in pixels.
        title: a line above the rows.

    Raises:
        StorageError: the file cannot be written.
    """
    from PIL import Image, ImageDraw

    caption_w, line = 260, 14
    top = line + 6 if title else 0
    rows = max(len(pairs), 1)
    sheet = Image.new("RGB", (2 * tile + caption_w, top + rows * (tile + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title, fill="black")
    if not pairs:
        draw.text((4, top + 4), "no false accepts or false rejects", fill="black")
    for row, p in enumerate(pairs):
        y = top + row * (tile + 4)
        for col, name in enumerate(p.images):
            sheet.paste(Image.fromarray(_tile(load(name), tile)), (col * tile, y))
        colour = "firebrick" if p.kind == "false_accept" else "navy"
        label = "false accept" if p.kind == "false_accept" else "false reject"
        sign = "<" if p.kind == "false_accept" else ">="
        x = 2 * tile + 6
        draw.text((x, y + 4), f"{label} (pair {p.pair + 1})", fill=colour)
        draw.text((x, y + 4 + line), f"d = {p.distance:.3f} {sign} {p.threshold:.3f}", fill="black")
        for k, name in enumerate(p.images):
            draw.text((x, y + 4 + (2 + k) * line), Path(name).name[-40:], fill="gray")
    path = Path(path)
    try:
        sheet.save(path, format="PNG")
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot write the contact sheet ({exc.strerror or exc})"
        ) from None
    return path
