"""Frozen configuration dataclasses, one per command.

The defaults here are the single source of truth: the Typer options in ``cli.py`` take their
defaults from these classes, and each run saves its resolved config next to its outputs (TOML).
Defaults follow the original recipe (see the README's "Coming from the original" section).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """Root of the built-in data cache (``$FACENET_CACHE`` or ``~/.cache/facenet``)."""
    return Path(os.environ.get("FACENET_CACHE", Path.home() / ".cache" / "facenet")).expanduser()


def demo_dir() -> Path:
    """Where the built-in demo dataset lives (built on first use)."""
    return cache_dir() / "demo"


def default_logs_dir() -> Path:
    return Path(os.environ.get("FACENET_LOGS", "~/logs/facenet")).expanduser()


def default_models_dir() -> Path:
    return Path(os.environ.get("FACENET_MODELS", "~/models/facenet")).expanduser()


@dataclass(frozen=True)
class AlignConfig:
    input_dir: Path | None = None
    output_dir: Path | None = None
    image_size: int = 182
    margin: int = 44
    random_order: bool = False
    detect_multiple_faces: bool = False
    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    workers: int = 0  # 0 = auto (one process per 4 cores, one for small jobs)
    shard: str = "0/1"
    gpu_memory_fraction: float = 1.0
    mode: str = "crop"  # crop | similarity
    batch_size: int = 32


# XLA (``jit_compile``) when neither --xla nor --no-xla is given, by device. CPU: off, since
# `python -m benchmarks xla` measured XLA slower there (forward 0.71x small, 0.64x
# Inception-ResNet-v1; train step 0.25x, 0.46x). GPU: off until `python -m benchmarks gpu` has
# measured it on one.
XLA_DEFAULT = {"CPU": False, "GPU": False}


def resolve_xla(xla: bool | None, gpu: bool) -> bool:
    """``--xla`` / ``--no-xla`` when given, else the device's default (``XLA_DEFAULT``)."""
    return XLA_DEFAULT["GPU" if gpu else "CPU"] if xla is None else xla


# What a fresh run uses for the options a resumed run keeps unless they are given again.
DEFAULT_MAX_NROF_EPOCHS = 500
DEFAULT_STRATEGY = "auto"
# ``--loss``: triplets with online selection, or a classifier of the training people.
LOSSES = ("triplet", "softmax", "arcface", "cosface")
CLASSIFIER_LOSSES = LOSSES[1:]


@dataclass(frozen=True)
class TrainConfig:
    """``facenet train``; ``None`` is "not given" (resolved before the run starts)."""

    logs_base_dir: Path = field(default_factory=default_logs_dir)
    models_base_dir: Path = field(default_factory=default_models_dir)
    data_dir: str | None = None  # one or more roots joined with ':'
    model_def: str | None = None  # None = 'inception_resnet_v1' (or the resumed run's)
    max_nrof_epochs: int | None = None  # None = DEFAULT_MAX_NROF_EPOCHS (or the resumed run's)
    batch_size: int = 90
    image_size: int = 160
    people_per_batch: int = 45
    images_per_person: int = 40
    epoch_size: int = 1000
    alpha: float = 0.2
    embedding_size: int = 128
    random_crop: bool = False
    random_flip: bool = False
    keep_probability: float = 1.0
    weight_decay: float = 0.0
    optimizer: str = "ADAGRAD"
    learning_rate: float = 0.1
    learning_rate_decay_epochs: int = 100
    learning_rate_decay_factor: float = 1.0
    learning_rate_schedule_file: Path | None = None
    moving_average_decay: float = 0.9999
    seed: int = 666
    gpu_memory_fraction: float = 1.0
    pretrained_model: Path | None = None
    triplet_selection: str = "random"  # random | semi-hard | hard
    selection_mode: str = "inference"  # inference | training
    use_fixed_image_standardization: bool = False
    resume: Path | None = None
    max_steps: int | None = None
    keep_checkpoints: int = 3
    lfw_dir: Path | None = None
    lfw_pairs: Path | None = None
    lfw_nrof_folds: int | None = None  # None = the pairs file's "K N" header, else 10
    lfw_distance_metric: int = 0
    lfw_use_flipped_images: bool = False
    lfw_subtract_mean: bool = False
    lfw_batch_size: int = 100
    strategy: str | None = None  # auto | one | mirrored | multiworker; None = DEFAULT_STRATEGY
    mixed_precision: bool = False
    # Classifier training (``--loss softmax|arcface|cosface``); the original's train_softmax.py.
    loss: str = "triplet"  # one of LOSSES
    margin_scale: float | None = None  # None = the loss's published s (64)
    margin: float | None = None  # None = the loss's published m (arcface 0.5, cosface 0.35)
    easy_margin: bool = False
    center_loss_factor: float = 0.0
    center_loss_alfa: float = 0.95
    prelogits_norm_loss_factor: float = 0.0
    prelogits_norm_p: float = 1.0
    prelogits_hist_max: float = 10.0
    validation_set_split_ratio: float = 0.0
    min_nrof_val_images_per_class: int = 0
    validate_every_n_epochs: int = 5
    random_rotate: bool = False
    random_color: bool = False
    flip_fusion: bool = False  # the model embeds a face and its mirror image (ModelInfo)
    filter_filename: Path | None = None
    filter_percentile: float = 100.0
    filter_min_nrof_images_per_class: int = 0
    deterministic: bool = False  # op determinism, fixed intra-op threads (train.graph)
    xla: bool | None = None  # None = XLA_DEFAULT for the device


@dataclass(frozen=True)
class ValidateConfig:
    lfw_dir: Path | None = None
    model: Path | None = None
    lfw_pairs: Path | None = None
    lfw_batch_size: int = 100
    image_size: int | None = None  # None = from the model's sidecar, else 160
    distance_metric: int = 0
    use_flipped_images: bool = False
    subtract_mean: bool = False
    use_fixed_image_standardization: bool | None = None  # None = from the sidecar
    lfw_nrof_folds: int | None = None  # None = the pairs file's "K N" header, else 10
    far_target: float = 1e-3
    strict: bool = False
    json: bool = False
    roc: Path | None = None
    xla: bool | None = None  # None = XLA_DEFAULT for the device
    record_threshold: bool = True
    benchmark: tuple[str, ...] = ()  # NAME=PATH each: several benchmarks in one table
    worst: int = 0  # list the N most confident false accepts and false rejects
    worst_png: Path | None = None  # and draw them as a contact sheet
    events_dir: Path | None = None  # None = the run's log folder when MODEL is a run
    all_checkpoints: bool = False  # every checkpoint of the run, in step order
    embedding_cache: bool = True  # reuse embeddings of (model, image) from an earlier run


@dataclass(frozen=True)
class PairsConfig:
    data_dir: Path
    out: Path
    nrof_folds: int = 10
    pairs_per_fold: int = 300
    seed: int = 666
    format: str | None = None  # "lfw" or "paths"; None: LFW when the file names allow it


@dataclass(frozen=True)
class BoardConfig:
    logdir: Path = field(default_factory=default_logs_dir)
    once: bool = False
    json: bool = False
    tensorboard: bool = False
    port: int = 6006
    poll_interval: float = 0.5
    models_dir: Path | None = None  # where train saved each run's config.toml (ETA, settings)


@dataclass(frozen=True)
class DemoConfig:
    minutes: float = 2.5  # training length (see facenet_cli.demo.settings)
    out: Path | None = None
    seed: int = 666
    loss: str = "triplet"  # one of LOSSES
    dry_run: bool = False
    json: bool = False


def from_params(cls: type, params: dict[str, Any]) -> Any:
    """Build config ``cls`` from a Click ``ctx.params`` dict.

    Unrelated keys are ignored and ``None`` values leave the dataclass default in place.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in params.items() if k in names and v is not None})


def to_toml_dict(config: Any) -> dict[str, Any]:
    """A TOML-serialisable dict of a config (Paths as strings, None dropped)."""
    out: dict[str, Any] = {}
    for key, value in dataclasses.asdict(config).items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


@dataclass(frozen=True)
class CompareConfig:
    model: Path
    images: tuple[Path, ...]
    all_faces: bool = False
    threshold: float | None = None  # None = the model's recorded threshold
    distance_metric: int | None = None  # None = the recorded threshold's metric, else 0
    json: bool = False


@dataclass(frozen=True)
class EmbedConfig:
    model: Path
    data_dir: Path
    out: Path
    align: bool = False
    batch_size: int = 100
    json: bool = False
    xla: bool | None = None  # None = XLA_DEFAULT for the device
    flip: bool = False


@dataclass(frozen=True)
class ClassifyTrainConfig:
    model: Path
    data_dir: Path
    out: Path
    align: bool = False
    use_split_dataset: bool = False
    min_nrof_images_per_class: int = 20
    nrof_train_images_per_class: int = 10
    seed: int = 666
    min_probability: float = 0.0
    threshold: float | None = None  # None = calibrated on the photos, else the model's
    batch_size: int = 100
    json: bool = False
    flip: bool = True
    whiten: bool = True
    known_rate: float = 0.0  # floor on the calibration's known people accepted (0: balanced)


@dataclass(frozen=True)
class ClassifyPredictConfig:
    model: Path
    classifier: Path
    images: Path
    align: bool = False
    use_split_dataset: bool = False
    min_nrof_images_per_class: int = 20
    nrof_train_images_per_class: int = 10
    seed: int = 666
    min_probability: float | None = None  # None = the classifier's own
    threshold: float | None = None  # None = the classifier's own
    batch_size: int = 100
    json: bool = False
