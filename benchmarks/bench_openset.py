"""Open-set naming (``facenet classify``) on people the model never saw, made like the demo's.

The demo's classify figures are measured on the demo's own held-out people; this benchmark is
where the classifier's rules are compared without looking at them. Data: one real LFW photo of
each of 100 people of ``../shared/data/lfw-dev.tar.gz`` (found as the quality benchmark finds it)
that the quality benchmark does not hold out (its train and dev people), cropped to the face,
shrunk to the 25 x 25 px of the demo's faces and turned into 10 photos each by the demo's photo
synthesis (its own seed), then aligned as the demo aligns (MTCNN, 160 px, margin 32). Cached in
``$FACENET_CACHE/openset-bench``.

Model: ``FACENET_OPENSET_MODEL``, else the newest ``facenet demo`` run.

Protocol: ``DRAWS`` draws of 30 known people and 70 strangers. Each known person gives 7 photos
to ``classify train`` (``--use-split-dataset --min-nrof-images-per-class 7
--nrof-train-images-per-class 7``, the demo README's commands) and the rest to the held-out
report; every photo of the strangers is named too. Rows: the classifier's settings (whitening,
the ``--known-rate`` floor), each with the calibration's own expectation beside what happened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.bench_quality import extract, person_split, shared_dir
from benchmarks.harness import Comparison

PEOPLE = 100
PHOTOS = 10
KNOWN = 30
TRAIN_PHOTOS = 7
DRAWS = 8
SEED = 12345
# Rows: (name, whiten, known_rate).
ROWS = (
    ("plain", False, 0.0),
    ("whitened (default)", True, 0.0),
    ("whitened, --known-rate 0.95", True, 0.95),
)


def face_crop(photo: Any) -> Any:
    """The face of a 250 x 250 LFW photo as the demo's faces are: grey, 25 x 25, tight."""
    import cv2

    return cv2.resize(photo[78:178, 80:170], (25, 25), interpolation=cv2.INTER_AREA)


def prepare(shared: Path, work: Path) -> Path:
    """Build (once) and align the photos; return the aligned folder."""
    import cv2
    import numpy as np

    from facenet_cli.align.pipeline import run_align
    from facenet_cli.config import AlignConfig
    from facenet_cli.data.demo_faces import (
        DEMO_IMAGE_SIZE,
        DEMO_MARGIN,
        encode_jpeg,
        photo_rng,
        synthesize_photo,
    )

    raw, aligned = work / "raw", work / "aligned"
    if not (raw / ".done").exists():
        source = extract(shared, work / "lfw")
        people = sorted(p.name for p in source.iterdir()
                        if p.is_dir() and person_split(p.name) != "test")  # fmt: skip
        chosen = np.random.default_rng(SEED).choice(people, PEOPLE, replace=False)
        for index, name in enumerate(sorted(chosen)):
            first = sorted((source / name).glob("*.jpg"))[0]
            face = face_crop(cv2.imread(str(first), cv2.IMREAD_GRAYSCALE))
            folder = raw / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(1, PHOTOS + 1):
                photo = synthesize_photo(face, photo_rng(SEED, index, k))
                (folder / f"{name}_{k:04d}.jpg").write_bytes(encode_jpeg(photo))
        (raw / ".done").touch()
    run_align(AlignConfig(input_dir=raw, output_dir=aligned, image_size=DEMO_IMAGE_SIZE,
                          margin=DEMO_MARGIN), quiet=True)  # fmt: skip
    return aligned


def find_model() -> Path | None:
    named = os.environ.get("FACENET_OPENSET_MODEL")
    if named:
        return Path(named)
    from facenet_cli.data.demo_faces import demo_paths
    from facenet_cli.demo.data import newest_run
    from facenet_cli.demo.settings import models_dir

    return newest_run(models_dir(demo_paths()))


def draw(embeddings: Any, labels: Any, names: list[str], seed: int,
         whiten: bool, known_rate: float) -> dict[str, float]:  # fmt: skip
    """One draw: train on the known people's split, name their held-out photos and strangers."""
    import numpy as np

    from facenet_cli.use.people_classifier import UNKNOWN, fit_classifier, split_dataset
    from facenet_cli.use.threshold import gallery_threshold
    from facenet_cli.use.whitening import can_whiten

    rng = np.random.default_rng(seed)
    known = np.isin(labels, rng.choice(np.unique(labels), KNOWN, replace=False))
    split = split_dataset(np.where(known, labels, -1), TRAIN_PHOTOS, TRAIN_PHOTOS, seed=seed)
    train = split.train[known[split.train]]
    test = split.test[known[split.test]]
    x, y = embeddings[train], labels[train]
    whitened = whiten and can_whiten(y, embeddings.shape[1])
    fitted = gallery_threshold(x, y, 0, whitened=whitened, known_rate=known_rate)
    assert fitted is not None
    clf = fit_classifier(x, y, names, distance_threshold=fitted.value, distance_metric=0,
                         min_probability=0.0, whitened=whitened)  # fmt: skip
    named = [p.name for p in clf.predict(embeddings[test])]
    strangers = [p.name for p in clf.predict(embeddings[~known])]
    return {
        "threshold": fitted.value,
        "expected_known": fitted.known_accepted,
        "expected_strangers": fitted.strangers_rejected,
        "known": float(np.mean([n == names[v] for n, v in zip(named, labels[test], strict=True)])),
        "strangers": float(np.mean([n == UNKNOWN for n in strangers])),
    }


def run(quick: bool = False) -> list[Comparison]:
    shared = shared_dir()
    if shared is None:
        print("openset: skipped: ../shared/data/lfw-dev.tar.gz not found (set FACENET_SHARED_DIR)")
        return []
    model_path = find_model()
    if model_path is None:
        print("openset: skipped: no model (run `facenet demo`, or set FACENET_OPENSET_MODEL)")
        return []
    import numpy as np

    from facenet_cli.config import cache_dir
    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.use.face_embedding import embed_images, list_identities

    aligned = prepare(shared, cache_dir() / "openset-bench")
    model = load_embedding_model(model_path)
    paths, labels, names = list_identities(aligned)
    embeddings = embed_images(model, paths, align=False, flip=True).embeddings
    draws = 2 if quick else DRAWS
    rows = []
    for name, whiten, known_rate in ROWS:
        results = [draw(embeddings, labels, names, seed, whiten, known_rate)
                   for seed in range(draws)]  # fmt: skip
        mean = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
        rows.append({"setting": name, **mean})
    print_table(rows, model_path, len(paths), draws)
    return []


def print_table(rows: list[dict[str, Any]], model: Path, photos: int, draws: int) -> None:
    from rich.console import Console
    from rich.table import Table

    title = (
        f"open-set naming: {model}, {photos} photos of {PEOPLE} new people, "
        f"mean of {draws} draws of {KNOWN} known / {PEOPLE - KNOWN} strangers"
    )
    table = Table(title=title)
    for column in ("classifier", "threshold", "known named", "strangers unknown",
                   "expected (known / strangers)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "classifier" else "right")
    for r in rows:
        table.add_row(r["setting"], f"{r['threshold']:.3f}", f"{r['known']:.3f}",
                      f"{r['strangers']:.3f}",
                      f"{r['expected_known']:.3f} / {r['expected_strangers']:.3f}")  # fmt: skip
    Console(width=120).print(table)
