"""Embedding quality on real people the training never saw: raw pixels, triplets, each loss.

Data: the real LFW photos of ``../shared/data/lfw-dev.tar.gz`` (found beside the checkout, or
named by ``FACENET_SHARED_DIR``), extracted and aligned once (``facenet align --image-size 160
--margin 32``) into ``$FACENET_CACHE/quality-bench``. The PEOPLE are split by a stable hash of
their name: 60 % train, 15 % dev (for tuning recipes, never reported here), 25 % held out. Every
recipe trains on the train people only and is scored with the LFW protocol (10 folds, angular
distance) on pairs of the held-out people (``facenet pairs``, 60 matched + 60 mismatched pairs a
fold): accuracy, AUC and VAL at FAR 1e-3 (with 60 mismatched pairs a fold the smallest
reachable FAR is 1/60, so VAL is reported at the FAR the folds reach).

Rows: raw pixels (each standardised 160 px crop as one vector); the triplet recipe (the demo's:
the small model behind a 2 x 2 pool, online selection); softmax, arcface and cosface, each with
the settings of ``benchmarks/quality/lfw_dev_cpu.toml`` (the CPU recipe) apart from the loss.
Every trained row gets the same number of minutes (``FACENET_QUALITY_MINUTES``, default 4; the
recipe file's own run is 800 steps): step counts come from steps-a-minute rates measured on a
busy 2-core CPU (the demo's convention), so a row is reproducible, and its measured wall time is
printed beside it; the classifier rows keep the recipe's schedule with shorter epochs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tarfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Comparison
from facenet_cli.train.registry import HEADS

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "benchmarks" / "quality" / "lfw_dev_cpu.toml"
TARBALL = "lfw-dev.tar.gz"
SPLIT = (("train", 60), ("dev", 75), ("test", 100))  # cumulative percent of people
PAIRS_PER_FOLD = 60
MINUTES = 4.0
# Training steps a minute on a busy 2-core CPU (the demo's convention): the triplet recipe at
# batch 90 (the demo's), the classifier recipe at its batch of 64 (measured at load 13).
TRIPLET_STEPS_PER_MINUTE = 120
CLASSIFIER_STEPS_PER_MINUTE = 120
TRIPLET_EPOCH_SIZE = 20


def shared_dir() -> Path | None:
    """``../shared`` beside the checkout (or ``FACENET_SHARED_DIR``), when it has the data."""
    named = os.environ.get("FACENET_SHARED_DIR")
    for candidate in ([Path(named)] if named else []) + [REPO.parent / "shared"]:
        if (candidate / "data" / TARBALL).is_file():
            return candidate
    return None


def person_split(name: str) -> str:
    """``train``, ``dev`` or ``test`` for a person, from a stable hash of the name."""
    bucket = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 100
    return next(part for part, upper in SPLIT if bucket < upper)


def extract(shared: Path, work: Path) -> Path:
    """The tarball's photos extracted once under ``work/raw``; the folder of people folders."""
    raw = work / "raw"
    if not (raw / ".done").exists():
        with tarfile.open(shared / "data" / TARBALL) as tar:
            tar.extractall(raw, filter="data")
        (raw / ".done").touch()
    roots = [p for p in raw.iterdir() if p.is_dir()]
    return roots[0] if len(roots) == 1 and not any(roots[0].glob("*.jpg")) else raw


def prepare(shared: Path, work: Path) -> dict[str, Path]:
    """Extract, align (cached) and split the people; pairs of the held-out people."""
    from facenet_cli.align.pipeline import run_align
    from facenet_cli.config import AlignConfig
    from facenet_cli.data.pairs import make_pairs, write_pairs

    source = extract(shared, work)
    aligned = work / "aligned-160"
    run_align(AlignConfig(input_dir=source, output_dir=aligned, image_size=160, margin=32),
              quiet=True)  # fmt: skip
    split = work / "split"
    for person in sorted(p for p in aligned.iterdir() if p.is_dir() and any(p.iterdir())):
        link = split / person_split(person.name) / person.name
        if not link.exists():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(person.resolve(), target_is_directory=True)
    pairs = split / "test_pairs.txt"
    if not pairs.exists():
        write_pairs(pairs, make_pairs(split / "test", 10, PAIRS_PER_FOLD, seed=666), 10,
                    PAIRS_PER_FOLD)  # fmt: skip
    return {"train": split / "train", "test": split / "test", "pairs": pairs}


def recipe_options() -> dict[str, Any]:
    from facenet_cli.config import TrainConfig
    from facenet_cli.data.config_file import read_config_file

    return read_config_file(RECIPE, schema=TrainConfig)


def recipes(minutes: float, base: Any) -> dict[str, Any]:
    """``{row name: TrainConfig}`` of the trained rows, each sized to ``minutes``."""
    from facenet_cli.demo.settings import TRIPLET_OPTIONS

    options = recipe_options()
    # The recipe's schedule (epochs, decay) squeezed into the budget: shorter epochs.
    steps = round(minutes * CLASSIFIER_STEPS_PER_MINUTE)
    epoch_size = max(1, steps // options["max_nrof_epochs"])
    out = {
        "triplet (demo recipe)": dataclasses.replace(
            base,
            **TRIPLET_OPTIONS,
            epoch_size=TRIPLET_EPOCH_SIZE,
            max_nrof_epochs=max(1, round(minutes * TRIPLET_STEPS_PER_MINUTE / TRIPLET_EPOCH_SIZE)),
        ),  # fmt: skip
    }
    for loss in HEADS:
        settings = {**options, "loss": loss, "epoch_size": epoch_size}
        if loss == "softmax":
            # The margin settings mean nothing to a plain softmax; the regulariser of the
            # original's best released models (prelogits L1 norm penalty) instead.
            settings.pop("margin", None)
            settings.pop("margin_scale", None)
            settings["prelogits_norm_loss_factor"] = 5e-4
        out[loss] = dataclasses.replace(base, **settings)
    return out


def _row(name: str, result: Any, seconds: float) -> dict[str, Any]:
    import numpy as np

    val = np.asarray(result.val, dtype=float)
    far = np.asarray(result.far, dtype=float)
    return {
        "recipe": name,
        "accuracy": float(np.mean(result.accuracy)),
        "std": float(np.std(result.accuracy)),
        "auc": float(result.auc),
        "val": float(np.nanmean(val)) if np.isfinite(val).any() else float("nan"),
        "far": float(np.nanmean(far)) if np.isfinite(far).any() else float("nan"),
        "seconds": seconds,
    }


def evaluate_model(model_dir: Path, data: dict[str, Path]) -> Any:
    """The held-out pairs through ``facenet validate``'s code (angular distance)."""
    from facenet_cli.evaluate.validate import evaluate_on_pairs
    from facenet_cli.models.loading import load_embedding_model

    model = load_embedding_model(model_dir)
    report = evaluate_on_pairs(model.embed, data["test"], data["pairs"],
                               image_size=model.info.image_size, distance_metric=1)  # fmt: skip
    return report.result


def run(quick: bool = False) -> list[Comparison]:
    shared = shared_dir()
    if shared is None:
        print(f"quality: skipped: ../shared/data/{TARBALL} not found (set FACENET_SHARED_DIR)")
        return []
    from facenet_cli.config import TrainConfig, cache_dir
    from facenet_cli.demo.run import raw_pixel_embeddings
    from facenet_cli.evaluate.validate import evaluate_on_pairs
    from facenet_cli.train.reporting import NullReporter
    from facenet_cli.train.run import run_train

    minutes = float(os.environ.get("FACENET_QUALITY_MINUTES", 0.5 if quick else MINUTES))
    work = cache_dir() / "quality-bench"
    data = prepare(shared, work)
    load = os.getloadavg()[0]
    rows = []
    start = time.perf_counter()
    baseline = evaluate_on_pairs(raw_pixel_embeddings, data["test"], data["pairs"],
                                 image_size=160, distance_metric=1)  # fmt: skip
    rows.append(_row("raw pixels", baseline.result, time.perf_counter() - start))
    base = TrainConfig(data_dir=str(data["train"]), logs_base_dir=work / "logs",
                       models_base_dir=work / "models")  # fmt: skip
    for name, config in recipes(minutes, base).items():
        start = time.perf_counter()
        result = run_train(config, NullReporter())
        seconds = time.perf_counter() - start
        rows.append(_row(name, evaluate_model(result.run_dir / "export", data), seconds))
        print(f"quality: {name}: {rows[-1]}", flush=True)
    print_table(rows, minutes, load, data)
    return []


def print_table(rows: list[dict[str, Any]], minutes: float, load: float,
                data: dict[str, Path]) -> None:  # fmt: skip
    from rich.console import Console
    from rich.table import Table

    people = sum(1 for p in data["test"].iterdir() if p.is_dir())
    table = Table(title=f"held-out real people ({people}), {minutes:g} min a recipe, "
                        f"load {load:.1f} at start")  # fmt: skip
    for column in ("recipe", "accuracy", "AUC", "VAL@FAR", "FAR", "train + eval s"):
        table.add_column(column, justify="left" if column == "recipe" else "right")
    for r in rows:
        table.add_row(r["recipe"], f"{r['accuracy']:.3f} ± {r['std']:.3f}", f"{r['auc']:.3f}",
                      f"{r['val']:.3f}", f"{r['far']:.4f}", f"{r['seconds']:.0f}")  # fmt: skip
    Console().print(table)
