"""Exports vs their source: LFW-protocol accuracy of each exported file on real faces.

The source model (``FACENET_EXPORTS_MODEL``, else the newest demo run, else an untrained
``small`` at 160 px, which is said) is exported to every ``facenet export --to`` format; the
source and each file are validated on the same pairs of real aligned faces (celeba-dev from
``../shared/data``: 160 px MTCNN crops, 10 folds) and printed side by side with the max abs
embedding difference. Each export should be within 0.002 of the source's accuracy.
"""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

from benchmarks.harness import Comparison

TARBALL = "celeba-dev.tar.gz"
PEOPLE = 120
FOLDS, PAIRS_PER_FOLD = 10, 30
REPRESENTATIVE = 100
TOLERANCE = 0.002


def _shared_data() -> Path | None:
    from benchmarks.bench_quality import REPO

    named = os.environ.get("FACENET_SHARED_DIR")
    for candidate in ([Path(named)] if named else []) + [REPO.parent / "shared"]:
        if (candidate / "data" / TARBALL).is_file():
            return candidate / "data"
    return None


def _faces(data: Path, work: Path) -> Path:
    root = work / "celeba-dev"
    if not (work / ".done").exists():
        with tarfile.open(data / TARBALL) as tar:
            tar.extractall(work, filter="data")
        (work / ".done").touch()
    return root


def _source(work: Path) -> tuple[Path, str]:
    named = os.environ.get("FACENET_EXPORTS_MODEL")
    if named:
        return Path(named), "FACENET_EXPORTS_MODEL"
    from facenet_cli.config import cache_dir

    runs = sorted((cache_dir() / "demo" / "models").glob("*/model.json"))
    if runs:
        return runs[-1].parent, "newest demo run"
    from facenet_cli.models import create_model
    from facenet_cli.models.export import export_model
    from facenet_cli.models.sidecar import ModelInfo

    info = ModelInfo("small", 128, 160, "per_image")
    out = work / "untrained-small"
    if not (out / "model.json").exists():
        export_model(create_model("small", **info.build_kwargs()), info, out)
    return out, "untrained small, 160 px (no trained model found)"


def run(quick: bool = False) -> list[Comparison]:
    data = _shared_data()
    if data is None:
        print(f"exports: skipped: ../shared/data/{TARBALL} not found (set FACENET_SHARED_DIR)")
        return []
    import numpy as np

    from facenet_cli.config import cache_dir
    from facenet_cli.data.pairs import make_pairs, write_pairs
    from facenet_cli.evaluate.validate import evaluate_on_pairs
    from facenet_cli.models.export import read_faces, run_export
    from facenet_cli.models.export_formats import EXPORT_FORMATS
    from facenet_cli.models.loading import load_embedding_model

    work = cache_dir() / "exports-bench"
    work.mkdir(parents=True, exist_ok=True)
    faces = _faces(data, work)
    people = sorted(p for p in faces.iterdir() if p.is_dir())
    subset = work / "pairs-people"
    if not subset.exists():
        subset.mkdir()
        for person in people[:PEOPLE]:
            (subset / person.name).symlink_to(person.resolve())
    representative = work / "representative"
    if not representative.exists():
        representative.mkdir()
        for person in people[PEOPLE : PEOPLE + REPRESENTATIVE]:  # people not in the pairs
            (representative / person.name).symlink_to(person.resolve())
    pairs = work / "pairs.txt"
    if not pairs.exists():
        write_pairs(pairs, make_pairs(subset, FOLDS, PAIRS_PER_FOLD, seed=0), FOLDS,
                    PAIRS_PER_FOLD)  # fmt: skip
    source, origin = _source(work)
    out = work / "export"
    run_export(source, out, [f.name for f in EXPORT_FORMATS], representative)
    reference = load_embedding_model(out)
    probe = read_faces(subset, reference.info.image_size, 64)
    ref_embeddings = reference.embed(probe)
    rows = [("source (SavedModel export)", out)] + [
        (f.name, out / f.file_name) for f in EXPORT_FORMATS
    ]
    results = []
    base_accuracy = None
    print(f"exports: source {source} ({origin}); {FOLDS} x {2 * PAIRS_PER_FOLD} pairs of "
          f"{PEOPLE} celeba-dev people")  # fmt: skip
    print(f"{'model':<28}{'accuracy':>10}{'delta':>9}{'AUC':>8}{'max|diff|':>11}{'s':>7}")
    for name, path in rows:
        model = load_embedding_model(path)
        start = time.perf_counter()
        report = evaluate_on_pairs(model.embed, subset, pairs,
                                   image_size=model.info.image_size, nrof_folds=FOLDS)  # fmt: skip
        seconds = time.perf_counter() - start
        accuracy = report.result.accuracy_mean
        base_accuracy = accuracy if base_accuracy is None else base_accuracy
        diff = float(np.abs(model.embed(probe) - ref_embeddings).max())
        print(f"{name:<28}{accuracy:>10.4f}{accuracy - base_accuracy:>+9.4f}"
              f"{report.result.auc:>8.4f}{diff:>11.1e}{seconds:>7.1f}")  # fmt: skip
        results.append((name, accuracy, seconds, diff))
    worst = max(abs(a - results[0][1]) for _, a, _, _ in results)
    verdict = "within" if worst <= TOLERANCE else "NOT within"
    print(f"exports: every export {verdict} {TOLERANCE} of the source (worst {worst:.4f})")
    base_s = results[0][2]
    return [
        Comparison(
            name=f"exports/{name}", ours=name, baseline="source SavedModel",
            ours_s=[seconds], baseline_s=[base_s], units=2 * FOLDS * PAIRS_PER_FOLD,
            unit_name="pairs",
            notes=f"accuracy {accuracy:.4f} vs {results[0][1]:.4f}, max|diff| {diff:.1e}; "
            f"{origin}",
        )
        for name, accuracy, seconds, diff in results[1:]
    ]  # fmt: skip
