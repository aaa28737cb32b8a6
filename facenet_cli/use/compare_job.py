"""``facenet compare``: are the faces in these photos the same person?

Each photo is detected and cut on the fly with the geometry of the model's training data,
embedded, and every pair judged at the model's verification threshold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.use.threshold import METRIC_NAMES, Threshold, model_threshold, resolve_threshold
from facenet_cli.use.verify import distance_matrix, verdicts

if TYPE_CHECKING:
    from facenet_cli.config import CompareConfig


@dataclass(frozen=True)
class Comparison:
    """The answer of ``compare``.

    Attributes:
        faces: ``(photo, face index, box)`` per embedded face, in matrix order.
        distances: ``(F, F)`` distance matrix.
        metric: 0 squared Euclidean, 1 angular.
        threshold: the threshold judged with (None: distances only).
        skipped: ``(photo, reason)`` for photos without a face.
        alignment: where the crop geometry came from, and what it is.
        recorded_metric: the metric of the threshold in the model's sidecar (None: none).
    """

    faces: list[tuple[Path, int, list[int]]]
    distances: np.ndarray
    metric: int
    threshold: Threshold | None
    skipped: list[tuple[Path, str]]
    alignment: dict[str, Any]
    recorded_metric: int | None = None

    def labels(self) -> list[str]:
        """A name per face: the file name (the path where names repeat), ``#i`` per face when a
        photo has several."""
        photos = list(dict.fromkeys(p for p, _, _ in self.faces))
        unique = len({p.name for p in photos}) == len(photos)
        multi = {p for p, i, _ in self.faces if i > 0}
        out = []
        for p, i, _ in self.faces:
            name = p.name if unique else str(p)
            out.append(f"{name}#{i}" if p in multi else name)
        return out

    def pairs(self) -> list[dict[str, Any]]:
        out = []
        same = verdicts(self.distances, self.threshold.value) if self.threshold else None
        labels = self.labels()
        for a in range(len(self.faces)):
            for b in range(a + 1, len(self.faces)):
                d = round(float(self.distances[a, b]), 4)
                row: dict[str, Any] = {"a": labels[a], "b": labels[b], "distance": d}
                if same is not None:
                    row["same"] = bool(same[a, b])
                out.append(row)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "faces": [{"photo": str(p), "face": i, "box": box} for p, i, box in self.faces],
            "distance_metric": METRIC_NAMES[self.metric],
            "distances": np.round(self.distances, 4).tolist(),
            "threshold": self.threshold.to_dict() if self.threshold else None,
            "pairs": self.pairs(),
            "skipped": [{"photo": str(p), "reason": r} for p, r in self.skipped],
            "alignment": self.alignment,
        }


def compare_photos(config: CompareConfig) -> Comparison:
    """Detect, embed and compare; photos without a face are listed, not fatal.

    Raises:
        InputError: no photo has a face (nothing to compare).
    """
    import dataclasses

    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.use.faces import detect_photos, model_alignment

    model = load_embedding_model(config.model)
    info = model.info
    threshold, metric = resolve_threshold(info, config.threshold, config.distance_metric)
    alignment = model_alignment(info, Path(model.source))
    photos = detect_photos(
        [Path(p) for p in config.images], alignment, info.image_size, all_faces=config.all_faces
    )
    faces: list[tuple[Path, int, list[int]]] = []
    crops: list[np.ndarray] = []
    skipped: list[tuple[Path, str]] = []
    for photo in photos:
        if photo.reason is not None:
            skipped.append((photo.path, photo.reason))
        for i, (crop, box) in enumerate(zip(photo.crops, photo.boxes, strict=True)):
            faces.append((photo.path, i, [int(v) for v in box]))
            crops.append(crop)
    if not crops:
        first = skipped[0] if skipped else (Path("."), "no photos")
        raise InputError(f"{first[0]}: {first[1]}; no face in any of the {len(photos)} photo(s)")
    if len(crops) < 2:
        why = "".join(f"; {p}: {r}" for p, r in skipped[:1])
        raise InputError(f"{faces[0][0]}: the only face found, and compare needs two{why}")
    emb = model.embed(np.stack(crops).astype(np.float32))
    recorded = model_threshold(info)
    return Comparison(
        faces, distance_matrix(emb, metric), metric, threshold, skipped,
        dataclasses.asdict(alignment), None if recorded is None else recorded.metric,
    )  # fmt: skip


def run_compare(config: CompareConfig) -> Comparison:
    """``facenet compare``: print the distance matrix and a verdict for each pair."""
    from rich.console import Console
    from rich.table import Table

    from facenet_cli.progress import console

    result = compare_photos(config)
    if config.json:
        print(json.dumps(result.to_dict(), indent=2))
        return result
    for photo, reason in result.skipped:
        console.print(f"[yellow]skipped:[/] {photo}: {reason}", highlight=False, soft_wrap=True)
    labels = result.labels()
    metric = METRIC_NAMES[result.metric]
    matrix = Table(title=f"distances ({metric})")
    matrix.add_column("#", justify="right")
    matrix.add_column("face")
    for k in range(len(labels)):
        matrix.add_column(str(k), justify="right")
    for k, label in enumerate(labels):
        matrix.add_row(str(k), label, *(f"{d:.3f}" for d in result.distances[k]))
    out = Console(highlight=False)
    out.print(matrix)
    if result.threshold is None:
        if result.recorded_metric is None:
            why = "the model's model.json records none (run `facenet validate` on it"
        else:
            why = (
                f"the model's model.json records one for {METRIC_NAMES[result.recorded_metric]} "
                f"distances only (run `facenet validate --distance-metric {result.metric}`"
            )
        out.print(f"no threshold: {why}, or pass --threshold); distances only", highlight=False)
        return result
    pairs = Table(title=f"verdicts at {result.threshold.value:g} ({result.threshold.source})")
    for name in ("a", "b", "distance", "verdict"):
        pairs.add_column(name, justify="right" if name == "distance" else "left")
    for row in result.pairs():
        verdict = "[green]same[/]" if row["same"] else "[red]different[/]"
        pairs.add_row(row["a"], row["b"], f"{row['distance']:.3f}", verdict)
    out.print(pairs)
    return result
