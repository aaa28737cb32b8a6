"""Frozen configuration dataclasses, one per command.

The defaults here are the single source of truth: the Typer options in ``cli.py`` take their
defaults from these classes, and each run saves its resolved config next to its outputs (TOML).
Defaults follow the original recipe (see the README's "Coming from the original" section).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facenet_cli.options import option


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


# What --help says of --xla's default, for every command that has the option.
XLA_DEFAULT_TEXT = (
    "off on CPU, where it measured slower (BENCHMARKS.md); off on GPU until measured there"
)
FORWARD_XLA_HELP = "Compile the forward pass with XLA (jit_compile; Keras models)."


def resolve_xla(xla: bool | None, gpu: bool) -> bool:
    """``--xla`` / ``--no-xla`` when given, else the device's default (``XLA_DEFAULT``)."""
    return XLA_DEFAULT["GPU" if gpu else "CPU"] if xla is None else xla


# What a fresh run uses for the options a resumed run keeps unless they are given again.
DEFAULT_MAX_NROF_EPOCHS = 500
DEFAULT_STRATEGY = "auto"


# ``--help`` panels of ``facenet train``.
_DATA = "Data"
_MODEL = "Model"
_OPT = "Optimisation"
_SEL = "Triplet selection"
_LFW = "LFW evaluation"
_CLS = "Classifier (--loss softmax/arcface/cosface)"
_RUN = "Run"
_LOSS_NAMES = "facenet_cli.train.registry:loss_names"


@dataclass(frozen=True)
class TrainConfig:
    """``facenet train``; ``None`` is "not given" (resolved before the run starts).

    Each field is one option, declared once (``facenet_cli.options``): the command line, the
    ``--config`` check and the library's own check come from these declarations.
    """

    logs_base_dir: Path = option(
        default_factory=default_logs_dir, panel=_RUN, help="Event files go to <this>/<run>/."
    )
    models_base_dir: Path = option(
        default_factory=default_models_dir, panel=_RUN, help="Checkpoints go to <this>/<run>/."
    )
    data_dir: str | None = option(
        None,
        panel=_DATA,
        shown_default="the demo faces",
        help="Aligned dataset root(s), joined with ':'.",
    )
    model_def: str | None = option(
        None,
        panel=_MODEL,
        shown_default="inception_resnet_v1, or demo_small on the demo faces",
        help="Registered model (inception_resnet_v1, inception_resnet_v2, squeezenet, small, "
        "small_pooled, mobilefacenet, demo_small; models.inception_resnet_v1 also works) or "
        "package.module:function.",
    )
    max_nrof_epochs: int | None = option(
        None,
        min=1,
        panel=_RUN,
        shown_default=f"{DEFAULT_MAX_NROF_EPOCHS}, or the resumed run's",
        help="Epochs to train.",
    )
    max_steps: int | None = option(None, min=1, panel=_RUN, help="Stop after this global step.")
    batch_size: int = option(
        90, min=1, panel=_OPT, help="Images per step; a multiple of 3 with --loss triplet."
    )
    image_size: int = option(160, min=8, panel=_DATA, help="Side of the model's input crop.")
    people_per_batch: int = option(
        45, min=2, panel=_SEL, help="Identities sampled per selection round."
    )
    images_per_person: int = option(40, min=2, panel=_SEL, help="Images sampled per identity.")
    epoch_size: int = option(1000, min=1, panel=_RUN, help="Training steps per epoch.")
    alpha: float = option(0.2, min=0.0, finite=True, panel=_SEL, help="Triplet margin.")
    embedding_size: int = option(128, min=1, panel=_MODEL, help="Embedding dimensions.")
    random_crop: bool = option(False, panel=_DATA, help="Random crops instead of centre crops.")
    random_flip: bool = option(False, panel=_DATA, help="Mirror images left-right at random.")
    keep_probability: float = option(
        1.0, min=0.0, max=1.0, panel=_MODEL, help="Dropout keep probability."
    )
    weight_decay: float = option(
        0.0, min=0.0, finite=True, panel=_MODEL, help="L2 weight decay of the kernels."
    )
    optimizer: str = option(
        "ADAGRAD",
        choices="facenet_cli.train.optimizers:OPTIMIZERS",
        upper=True,
        panel=_OPT,
        help="ADAGRAD, ADADELTA, ADAM, RMSPROP or MOM.",
    )
    learning_rate: float = option(
        0.1, finite=True, panel=_OPT, help="Initial rate; <= 0 uses --learning-rate-schedule-file."
    )
    learning_rate_decay_epochs: int = option(100, min=1, panel=_OPT, help="Epochs between decays.")
    learning_rate_decay_factor: float = option(
        1.0, finite=True, panel=_OPT, help="Factor of each decay."
    )
    learning_rate_schedule_file: Path | None = option(
        None, panel=_OPT, help="Lines 'epoch: lr'; '-1' stops the run."
    )
    moving_average_decay: float = option(
        0.9999,
        min=0.0,
        max=1.0,
        panel=_OPT,
        help="Decay of the weights' moving average (the exported model).",
    )
    seed: int = option(666, panel=_RUN, help="Seed of the sampling, the shuffles and the weights.")
    gpu_memory_fraction: float = option(
        1.0, min=0.0, max=1.0, panel=_RUN, help="Below 1: GPU memory grows on demand."
    )
    pretrained_model: Path | None = option(
        None, panel=_MODEL, help="Checkpoint or model to start from."
    )
    triplet_selection: str = option(
        "random",
        choices="facenet_cli.train.triplets:MODES",
        panel=_SEL,
        help="random (the original's rule), semi-hard or hard.",
    )
    selection_mode: str = option(
        "inference",
        choices=("inference", "training"),
        panel=_SEL,
        help="Embed for selection in inference or training mode.",
    )
    use_fixed_image_standardization: bool = option(
        False, panel=_DATA, help="(x - 127.5) / 128 instead of per-image."
    )
    resume: Path | None = option(
        None, panel=_RUN, help="Run directory (or name) to continue at its exact step."
    )
    keep_checkpoints: int = option(3, min=1, panel=_RUN, help="Checkpoints kept.")
    lfw_dir: Path | None = option(None, panel=_LFW, help="Aligned LFW (or pairs) images.")
    lfw_pairs: Path | None = option(
        None,
        panel=_LFW,
        shown_default="pairs.txt in or beside LFW_DIR, else the official file",
        help="Pairs file, LFW or path-based (see `facenet pairs --help`).",
    )
    lfw_nrof_folds: int | None = option(
        None,
        min=2,
        panel=_LFW,
        shown_default="the K of the pairs file's 'K N' header, else 10",
        help="Folds of the protocol (the official file's 10, or the folds `facenet pairs` drew).",
    )
    lfw_distance_metric: int = option(
        0, min=0, max=1, panel=_LFW, help="0 squared Euclidean, 1 angular."
    )
    lfw_use_flipped_images: bool = option(
        False, panel=_LFW, help="Concatenate each face's and its mirror's embedding."
    )
    lfw_subtract_mean: bool = option(
        False, panel=_LFW, help="Subtract the embeddings' mean before the distances."
    )
    benchmark: tuple[str, ...] = option(
        (),
        panel=_LFW,
        help="NAME=PATH: also validate on this benchmark after each epoch (lfw, cfp_ff, cfp_fp, "
        "agedb_30, calfw, cplfw; an insightface .bin pack, the set's own layout or a pairs "
        "file); repeat for several. Results go to the event files (the board's Benchmarks panel).",
    )
    lfw_batch_size: int = option(100, min=1, panel=_LFW, help="Images per evaluation batch.")
    strategy: str | None = option(
        None,
        choices="facenet_cli.train.distribute:STRATEGIES",
        panel=_RUN,
        shown_default=f"{DEFAULT_STRATEGY}, or the resumed run's",
        help="auto (mirrored on 2+ GPUs, else one), one, mirrored (all local GPUs) or "
        "multiworker (machines named by TF_CONFIG); see docs/distributed.md.",
    )
    mixed_precision: bool = option(
        False, panel=_RUN, help="16-bit compute: float16 with loss scaling on GPU, bfloat16 on CPU."
    )
    # Classifier training (``--loss softmax|arcface|cosface``); the original's train_softmax.py.
    loss: str = option(
        "triplet",
        choices=_LOSS_NAMES,
        panel=_CLS,
        help="triplet (online selection), softmax (the original's classifier), arcface or "
        "cosface (margin softmax); see the README's 'Which loss to pick'.",
    )
    margin_scale: float | None = option(
        None,
        min=0.0,
        min_open=True,
        finite=True,
        panel=_CLS,
        shown_default="the head's published s (64)",
        help="Margin heads' scale s.",
    )
    margin: float | None = option(
        None,
        min=0.0,
        max=math.pi / 2,
        max_open=True,
        panel=_CLS,
        shown_default="the head's published m (arcface 0.5, cosface 0.35)",
        help="Margin heads' margin m.",
    )
    easy_margin: bool = option(False, panel=_CLS, help="arcface: margin only for positive cosines.")
    center_loss_factor: float = option(
        0.0, min=0.0, finite=True, panel=_CLS, help="Center loss weight."
    )
    center_loss_alfa: float = option(0.95, min=0.0, max=1.0, panel=_CLS, help="Center update rate.")
    prelogits_norm_loss_factor: float = option(
        0.0, min=0.0, finite=True, panel=_CLS, help="Prelogits norm penalty."
    )
    prelogits_norm_p: float = option(
        1.0, min=0.0, min_open=True, finite=True, panel=_CLS, help="Norm of the prelogits penalty."
    )
    prelogits_hist_max: float = option(
        10.0,
        min=0.0,
        min_open=True,
        finite=True,
        panel=_CLS,
        help="Clip of the prelogits histogram (prelogits_hist.npy).",
    )
    validation_set_split_ratio: float = option(
        0.0,
        min=0.0,
        max=1.0,
        max_open=True,
        panel=_CLS,
        help="Share of each class's images held out.",
    )
    min_nrof_val_images_per_class: int = option(
        0, min=0, panel=_CLS, help="Classes with fewer held-out images are not split."
    )
    validate_every_n_epochs: int = option(
        5, min=1, panel=_CLS, help="Epochs between validations on the held-out images."
    )
    random_rotate: bool = option(False, panel=_DATA, help="Rotate by up to 10 degrees.")
    random_color: bool = option(
        False, panel=_DATA, help="Random brightness, contrast, channel gains and grayscale."
    )
    flip_fusion: bool = option(
        False,
        panel=_DATA,
        help="The model's embedding of a face is the normalised sum of the embeddings of the face "
        "and its mirror image (two forward passes a face); recorded in model.json, so "
        "evaluation, validate, compare, embed, classify and the export all use it.",
    )
    filter_filename: Path | None = option(
        None, panel=_CLS, help="Distances to class centers (HDF5 or .npz)."
    )
    filter_percentile: float = option(
        100.0,
        min=0.0,
        max=100.0,
        panel=_CLS,
        help="Images beyond this percentile of their class are dropped.",
    )
    filter_min_nrof_images_per_class: int = option(
        0, min=0, panel=_CLS, help="Classes left with fewer images are dropped."
    )
    deterministic: bool = option(
        False,
        panel=_RUN,
        help="Deterministic ops and 2 intra-op threads: the same weights for the seed on any "
        "core count (same TensorFlow, same CPU instruction set).",
    )
    xla: bool | None = option(
        None,
        panel=_RUN,
        shown_default=XLA_DEFAULT_TEXT,
        help="Compile the train step and the forward passes with XLA (jit_compile; one-device "
        "runs).",
    )


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
    xla: bool | None = option(None, shown_default=XLA_DEFAULT_TEXT, help=FORWARD_XLA_HELP)
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
    loss: str = "triplet"  # one of facenet_cli.train.registry.loss_names()
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
    xla: bool | None = option(None, shown_default=XLA_DEFAULT_TEXT, help=FORWARD_XLA_HELP)
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
