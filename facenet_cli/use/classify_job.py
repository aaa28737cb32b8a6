"""``facenet classify train`` and ``facenet classify predict``: name people in photos.

As the original ``classifier.py``: embed a folder of identities, fit a classifier (optionally on
a per-person split, ``--use-split-dataset``), save it; later embed new photos and name them,
with "unknown" for faces too far from everyone the classifier knows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli.errors import InputError
from facenet_cli.use.people_classifier import (
    UNKNOWN,
    FaceClassifier,
    Prediction,
    fit_classifier,
    load_classifier,
    save_classifier,
    split_dataset,
)
from facenet_cli.use.threshold import (
    GALLERY_FOLDS,
    GalleryCalibration,
    gallery_threshold,
    model_threshold,
)
from facenet_cli.use.whitening import can_whiten

if TYPE_CHECKING:
    from facenet_cli.config import ClassifyPredictConfig, ClassifyTrainConfig
    from facenet_cli.models.loading import EmbeddingModel


@dataclass(frozen=True)
class LabelledEmbeddings:
    paths: list[Path]
    labels: np.ndarray
    names: list[str]
    embeddings: np.ndarray
    skipped: dict[Path, str]


def _embed_with_progress(
    model: EmbeddingModel, paths: list[Path], align: bool, batch_size: int, flip: bool
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    from facenet_cli.progress import progress_bars
    from facenet_cli.use.face_embedding import embed_images

    with progress_bars(transient=True) as progress:
        task = progress.add_task("embedding", total=len(paths))
        done = embed_images(
            model, paths, align=align, batch_size=batch_size, flip=flip,
            on_done=lambda n: progress.update(task, advance=n),
        )  # fmt: skip
    return done.embeddings, done.kept, done.skipped


def embed_identities(
    model: EmbeddingModel, data_dir: Path, *, align: bool, batch_size: int, flip: bool
) -> LabelledEmbeddings:
    """Embeddings of a folder of identities (``<dir>/<name>/<image>``)."""
    from facenet_cli.use.face_embedding import list_identities

    paths, labels, names = list_identities(Path(data_dir))
    emb, kept, skipped = _embed_with_progress(model, paths, align, batch_size, flip)
    return LabelledEmbeddings(
        [paths[k] for k in kept], labels[kept], names, emb,
        {paths[k]: reason for k, reason in skipped.items()},
    )  # fmt: skip


def probe_embedding(model: EmbeddingModel) -> np.ndarray:
    """The model's embedding of one fixed noise image: two models give the same one only if
    they compute the same function (same weights), whatever files they were loaded from."""
    size = model.info.image_size
    image = np.random.default_rng(20261202).uniform(0, 255, (1, size, size, 3))
    return np.asarray(model.embed(image.astype(np.float32)), np.float64)[0]


def _check_model(clf: FaceClassifier, model: EmbeddingModel, path: Path) -> None:
    """A classifier only means something on the embeddings it was fitted on."""
    from facenet_cli.progress import console

    dims = int(clf.train_embeddings.shape[1])
    if model.info.embedding_size != dims:
        raise InputError(
            f"{path}: fitted on {dims}-dimensional embeddings; {model.source} gives "
            f"{model.info.embedding_size}"
        )
    probe = clf.meta.get("probe")
    if probe is not None and len(probe) == dims:
        same = np.allclose(probe_embedding(model), np.asarray(probe, np.float64), atol=1e-3)
    else:  # files from before the probe: the architecture is all there is to compare
        from facenet_cli.use.face_embedding import model_fingerprint

        same = clf.meta.get("model", {}).get("info") == model_fingerprint(model)["info"]
    if not same:
        console.print(
            f"[yellow]warning:[/] {path} was trained on another model's embeddings "
            "(the same image embeds differently): its names and distances mean little here",
            highlight=False, soft_wrap=True,
        )  # fmt: skip


def _split(data: LabelledEmbeddings, config: Any) -> tuple[np.ndarray, np.ndarray]:
    split = split_dataset(
        data.labels, config.min_nrof_images_per_class, config.nrof_train_images_per_class,
        seed=config.seed,
    )  # fmt: skip
    if split.train.size == 0:
        raise InputError(
            f"{config.data_dir if hasattr(config, 'data_dir') else config.images}: no identity "
            f"has {config.min_nrof_images_per_class} images (--min-nrof-images-per-class)"
        )
    return split.train, split.test


def _print_skipped(skipped: dict[Path, str]) -> None:
    from facenet_cli.progress import console

    for path, reason in skipped.items():
        console.print(f"[yellow]skipped:[/] {path}: {reason}", highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------------------- train


def run_classify_train(config: ClassifyTrainConfig) -> dict[str, Any]:
    """``facenet classify train``: fit, save, and report held-out accuracy with a split."""
    from facenet_cli.models.loading import load_embedding_model
    from facenet_cli.use.face_embedding import model_fingerprint
    from facenet_cli.use.people_classifier import CLASSIFIER_KIND
    from facenet_cli.use.store import check_replaceable

    check_replaceable(config.out, CLASSIFIER_KIND)
    model = load_embedding_model(config.model)
    data = embed_identities(model, config.data_dir, align=config.align,
                            batch_size=config.batch_size, flip=config.flip)  # fmt: skip
    _print_skipped(data.skipped)
    if config.use_split_dataset:
        train, test = _split(data, config)
    else:
        train, test = np.arange(len(data.labels)), np.zeros(0, np.int64)
    people = len(np.unique(data.labels[train]))
    if people < 2:
        raise InputError(
            f"{config.data_dir}: a classifier needs images of at least two people, found {people}"
        )
    whitened = config.whiten and can_whiten(data.labels[train], data.embeddings.shape[1])
    threshold, metric, source, calibration = _open_set_threshold(
        config, model, data, train, whitened
    )
    clf = fit_classifier(
        data.embeddings[train], data.labels[train], data.names,
        distance_threshold=threshold, distance_metric=metric,
        min_probability=config.min_probability, whitened=whitened,
        meta={"model": model_fingerprint(model), "probe": probe_embedding(model).tolist(),
              "threshold_source": source,
              "data_dir": str(config.data_dir), "align": config.align, "flip": config.flip,
              "calibration": calibration.to_dict() if calibration else None},
    )  # fmt: skip
    save_classifier(config.out, clf)
    report: dict[str, Any] = {
        "classifier": str(config.out),
        "people": len(clf.class_names),
        "train_images": int(train.size),
        "distance_threshold": threshold,
        "threshold_source": source,
        "calibration": calibration.to_dict() if calibration else None,
        "min_probability": config.min_probability,
        "flip": config.flip,
        "whitened": clf.whitening is not None,
        "skipped": {str(p): r for p, r in data.skipped.items()},
    }
    if test.size:
        known = np.isin(np.asarray(data.names)[data.labels[test]], clf.class_names)
        predictions = clf.predict(data.embeddings[test])
        truth = [data.names[int(v)] for v in data.labels[test]]
        report["held_out"] = held_out_report(predictions, truth, known)
    if config.json:
        print(json.dumps(report, indent=2))
        return report
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"classifier -> {config.out}", show_header=False)
    table.add_row("people", str(report["people"]))
    table.add_row("training images", str(report["train_images"]))
    table.add_row("unknown beyond", f"{_fmt(threshold)} ({source})")
    if calibration is not None:
        table.add_row(
            "calibration expects",
            f"known people named {calibration.known_accepted:.3f}, "
            f"strangers unknown {calibration.strangers_rejected:.3f}",
        )
    if config.use_split_dataset and not test.size:
        table.add_row(
            "held-out images",
            f"0 (no person has more than {config.nrof_train_images_per_class} images)",
        )
    if "held_out" in report:
        h = report["held_out"]
        table.add_row("held-out images", str(h["images"]))
        table.add_row("held-out accuracy", f"{h['accuracy']:.3f}")
        table.add_row("held-out called unknown", f"{h['unknown_rate']:.3f}")
    Console(highlight=False).print(table)
    return report


def _open_set_threshold(
    config: ClassifyTrainConfig,
    model: EmbeddingModel,
    data: LabelledEmbeddings,
    train: np.ndarray,
    whitened: bool,
) -> tuple[float | None, int, str, GalleryCalibration | None]:
    """``--threshold``; else one calibrated on the training photos (with what the calibration
    expects of it); else the model's pair threshold (a gallery of one photo per person cannot
    calibrate one)."""
    recorded = model_threshold(model.info)
    metric = recorded.metric if recorded is not None else 0
    if config.threshold is not None:
        return config.threshold, metric, "--threshold", None
    fitted = gallery_threshold(
        data.embeddings[train], data.labels[train], metric, whitened=whitened,
        known_rate=config.known_rate,
    )  # fmt: skip
    if fitted is not None:
        how = f"{GALLERY_FOLDS}-fold, whitened" if whitened else "leave-one-out"
        if config.known_rate > 0:
            how += f", known people >= {config.known_rate:g}"
        return fitted.value, metric, f"calibrated on the training photos, {how}", fitted
    if recorded is not None:
        return recorded.value, recorded.metric, recorded.source, None
    return None, metric, "none (one photo per person and no threshold in model.json)", None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def held_out_report(
    predictions: list[Prediction], truth: list[str], known: np.ndarray
) -> dict[str, Any]:
    """Accuracy on photos of known people; "unknown" rate on photos of everyone else."""
    names = np.array([p.name for p in predictions])
    truth_arr = np.array(truth)
    known = np.asarray(known, bool)
    out: dict[str, Any] = {"images": len(predictions)}
    if known.any():
        out["accuracy"] = float(np.mean(names[known] == truth_arr[known]))
        out["unknown_rate"] = float(np.mean(names[known] == UNKNOWN))
    if (~known).any():
        out["strangers"] = int(np.count_nonzero(~known))
        out["strangers_unknown_rate"] = float(np.mean(names[~known] == UNKNOWN))
    return out


# -------------------------------------------------------------------------------- predict


def _inputs(target: Path) -> tuple[list[Path], list[str] | None]:
    """Images to name, and the identity folder of each when ``target`` is laid out that way."""
    from facenet_cli.data.dataset import get_dataset, is_image_file, list_images

    target = Path(target)
    if target.is_file():
        return [target], None
    if not target.is_dir():
        raise InputError(f"{target}: no such image or directory")
    direct = list_images(target)
    if direct:
        return direct, None
    classes = get_dataset(target)
    pairs = [(p, c.name) for c in classes for p in c.image_paths if is_image_file(p)]
    return [p for p, _ in pairs], [name for _, name in pairs]


def run_classify_predict(config: ClassifyPredictConfig) -> dict[str, Any]:
    """``facenet classify predict``: name each photo, "unknown" beyond the thresholds."""
    import dataclasses

    from facenet_cli.models.loading import load_embedding_model

    clf: FaceClassifier = load_classifier(config.classifier)
    model = load_embedding_model(config.model)
    _check_model(clf, model, config.classifier)
    changes: dict[str, Any] = {}
    if config.threshold is not None:
        changes["distance_threshold"] = config.threshold
    if config.min_probability is not None:
        changes["min_probability"] = config.min_probability
    clf = dataclasses.replace(clf, **changes)
    paths, folders = _inputs(config.images)
    if config.use_split_dataset:
        if folders is None:
            raise InputError(f"{config.images}: --use-split-dataset needs identity sub-folders")
        names = sorted(set(folders))
        labels = np.array([names.index(f) for f in folders], np.int64)
        _, test = _split(LabelledEmbeddings(paths, labels, names, np.zeros((0, 0)), {}), config)
        if test.size == 0:
            raise InputError(
                f"{config.images}: no held-out images: no person has more than "
                f"{config.nrof_train_images_per_class} (--nrof-train-images-per-class)"
            )
        paths = [paths[k] for k in test]
        folders = [folders[k] for k in test]
    # The photos are embedded as the classifier's training photos were (files from before
    # ``flip`` existed hold plain embeddings).
    flip = bool(clf.meta.get("flip", False))
    emb, kept, skipped = _embed_with_progress(model, paths, config.align, config.batch_size, flip)
    if len(kept) == 0 and skipped:
        _print_skipped({paths[k]: r for k, r in skipped.items()})
        raise InputError(f"{config.images}: no face to name ({len(skipped)} image(s) skipped)")
    predictions = clf.predict(emb)
    rows = []
    for k, pred in zip(kept, predictions, strict=True):
        rows.append({"image": str(paths[int(k)]), **pred.to_dict()})
    report: dict[str, Any] = {
        "predictions": rows,
        "skipped": {str(paths[k]): r for k, r in skipped.items()},
    }
    if folders is not None and len(kept):
        truth = [folders[int(k)] for k in kept]
        report["summary"] = held_out_report(predictions, truth, np.isin(truth, clf.class_names))
    if config.json:
        print(json.dumps(report, indent=2))
        return report
    from rich.console import Console
    from rich.table import Table

    _print_skipped({paths[k]: r for k, r in skipped.items()})
    known = len(clf.class_names)
    table = Table(title=f"{config.images}: {len(rows)} face(s), {known} known people")
    for name in ("image", "name", "probability", "distance"):
        table.add_column(name, justify="left" if name in ("image", "name") else "right")
    root = Path(config.images) if Path(config.images).is_dir() else Path(config.images).parent
    for row in rows:
        name = row["name"] if row["name"] != UNKNOWN else f"[dim]unknown ({row['nearest']}?)[/]"
        shown = Path(row["image"]).relative_to(root).as_posix()  # the folder is in the title
        table.add_row(shown, name, f"{row['probability']:.3f}", f"{row['distance']:.3f}")
    out = Console(highlight=False)
    out.print(table)
    summary = report.get("summary")
    if summary:
        parts = []
        if "accuracy" in summary:
            parts.append(f"known people: accuracy {summary['accuracy']:.3f}")
        if "strangers" in summary:
            parts.append(
                f"other people: {summary['strangers_unknown_rate']:.3f} called unknown "
                f"({summary['strangers']} photos)"
            )
        out.print("; ".join(parts))
    return report
