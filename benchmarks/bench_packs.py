"""Validating on an insightface verification pack against the same crops as files in a folder.

Ours: ``read_pack`` (the restricted unpickler) and ``evaluate_on_pack``: the encoded images are
decoded once, in memory, by ``tf.data`` (no temporary files), embedded, and the protocol run.
Baseline: the folder path, ``evaluate_on_pairs`` on a pairs file naming the same PNG bytes as
files (resolve the pairs, read and decode each file, embed, the protocol). Both use the same
model at insightface's 112 px crop, each as a fresh ``facenet validate`` runs it (its tf.data
pipeline built and traced in the call); their accuracies must be equal (asserted). The ratio is the
folder's time over the pack's: above 1 the pack is faster.

Photo-like PNGs are made here (smooth structure plus sensor noise, as ``bench_embedding``), so
nothing under ``../shared/data`` is needed.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.harness import Comparison, compare

IMAGE_SIZE = 112  # insightface's aligned crop
BATCH = 100
FOLDS = 10


def _photos(n: int, rng: np.random.Generator) -> list[bytes]:
    from PIL import Image

    out = []
    for _ in range(n):
        coarse = Image.fromarray(rng.integers(0, 256, (8, 8, 3)).astype(np.uint8))
        base = np.asarray(coarse.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC))
        img = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def measure(pairs_per_fold: int, repeats: int) -> Comparison:
    from facenet_cli.data.pairs_file import PathPair, write_pairs
    from facenet_cli.data.verification_pack import read_pack, write_pack
    from facenet_cli.evaluate.pairs_embedding import _dataset, evaluate_on_pack, evaluate_on_pairs
    from facenet_cli.models.loading import embedding_fn
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo

    info = ModelInfo("small", 128, IMAGE_SIZE, "per_image")
    embed = embedding_fn(create_model("small", embedding_size=128, image_size=IMAGE_SIZE), info)
    n_pairs = FOLDS * 2 * pairs_per_fold
    images = _photos(2 * n_pairs, np.random.default_rng(0))
    issame = [(i // pairs_per_fold) % 2 == 0 for i in range(n_pairs)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "aligned"
        root.mkdir()
        for i, data in enumerate(images):
            (root / f"{i:05d}.png").write_bytes(data)
        pairs_file = Path(tmp) / "pairs.txt"
        pairs = [
            PathPair(f"{2 * i:05d}.png", f"{2 * i + 1:05d}.png", same)
            for i, same in enumerate(issame)
        ]
        write_pairs(pairs_file, pairs, FOLDS, pairs_per_fold)
        pack_path = write_pack(Path(tmp) / "lfw.bin", images, issame)
        kw = dict(image_size=IMAGE_SIZE, batch_size=BATCH, nrof_folds=FOLDS)
        seen: dict[str, float] = {}

        def on_pack() -> None:
            report = evaluate_on_pack(embed, read_pack(pack_path), **kw)
            seen["pack"] = report.result.accuracy_mean

        def on_folder() -> None:
            # As in a fresh `facenet validate`: the folder's pipeline is built (and its map
            # function traced) again, as the pack's is; the trainer's reuse is not measured.
            _dataset.cache_clear()
            report = evaluate_on_pairs(embed, root, pairs_file, **kw)
            seen["folder"] = report.result.accuracy_mean

        result = compare(
            f"validation on a verification pack vs a folder, {len(images)} images {IMAGE_SIZE}px",
            on_pack,
            on_folder,
            ours_label="read_pack + evaluate_on_pack (decoded once in memory)",
            baseline_label="evaluate_on_pairs on the same PNGs as files + pairs file",
            repeats=repeats,
            units=len(images),
            unit_name="img",
            target=">= 1.0x (no slower than the folder)",
            notes=f"small model; load avg {os.getloadavg()[0]:.1f}; pack "
            f"{pack_path.stat().st_size / 1e6:.1f} MB",
        )
        assert seen["pack"] == seen["folder"], seen
        result.extra["accuracy (both)"] = f"{seen['pack']:.4f}"
        return result


def run(quick: bool = False) -> list[Comparison]:
    return [measure(pairs_per_fold=30 if quick else 150, repeats=3 if quick else 5)]
