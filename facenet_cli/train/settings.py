"""A run's settings before it starts: what was not given is filled in, and everything is checked.

``None`` in a ``TrainConfig`` means "not given": a resumed run keeps its own value, a fresh run
takes the default from ``facenet_cli.config``. Checks run before any run directory is made, so
a bad option never leaves an empty run behind.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facenet_cli.config import DEFAULT_MAX_NROF_EPOCHS, DEFAULT_STRATEGY, TrainConfig
from facenet_cli.data.dataset import (
    ImageClass,
    non_image_warning,
    scan_dataset,
    subfolder_warning,
)
from facenet_cli.errors import InputError
from facenet_cli.train import checkpoints as ckpt
from facenet_cli.train.reporting import Reporter

if TYPE_CHECKING:
    from facenet_cli.models.sidecar import ModelInfo

DEFAULT_MODEL_DEF = "inception_resnet_v1"
# What a resumed run may change; everything else is the run's own.
RESUME_OVERRIDES = ("max_nrof_epochs", "max_steps", "strategy")


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Fill in what was not given: a resumed run's own settings, else the defaults.

    Raises:
        InputError: no ``data_dir`` for a fresh run; a resumed run that names none.
    """
    if config.resume is not None:
        model_dir = ckpt.resolve_run_dir(config.resume, config.models_base_dir)
        saved = ckpt.read_config(model_dir)
        if saved.data_dir is None or saved.model_def is None:
            raise InputError(
                f"{model_dir / ckpt.CONFIG_NAME}: names no data_dir and model_def to resume with"
            )
        # The run's own settings win; only how long to run and on what may be changed.
        given = {name: getattr(config, name) for name in RESUME_OVERRIDES}
        config = dataclasses.replace(
            saved, resume=model_dir, **{k: v for k, v in given.items() if v is not None}
        )
    elif config.data_dir is None:
        raise InputError("no --data-dir: name the aligned dataset to train on")
    else:
        config = absolute_paths(config)
    changes: dict[str, Any] = {"benchmark": tuple(config.benchmark)}  # a list from a TOML file
    if config.model_def is None:
        changes["model_def"] = DEFAULT_MODEL_DEF
    if config.max_nrof_epochs is None:
        changes["max_nrof_epochs"] = DEFAULT_MAX_NROF_EPOCHS
    if config.strategy is None:
        changes["strategy"] = DEFAULT_STRATEGY
    if config.lfw_dir is not None and config.lfw_pairs is None:
        from facenet_cli.data.pairs_file import find_pairs_file

        changes["lfw_pairs"] = find_pairs_file(config.lfw_dir)
    if config.lfw_nrof_folds is None:
        from facenet_cli.data.pairs_file import protocol_folds

        pairs = changes.get("lfw_pairs", config.lfw_pairs)
        changes["lfw_nrof_folds"] = protocol_folds(None, pairs if config.lfw_dir else None)
    return dataclasses.replace(config, **changes)


def absolute_paths(config: TrainConfig) -> TrainConfig:
    """A fresh run's paths made absolute, so that its saved ``config.toml`` resumes from any
    working directory."""
    from facenet_cli.data.dataset import split_roots

    changes: dict[str, Any] = {}
    if config.data_dir is not None:
        changes["data_dir"] = ":".join(str(p.absolute()) for p in split_roots(config.data_dir))
    if config.benchmark:
        from facenet_cli.data.benchmark_sets import parse_spec

        specs = [parse_spec(spec) for spec in config.benchmark]
        changes["benchmark"] = tuple(f"{name}={path.absolute()}" for name, path in specs)
    for name in ("logs_base_dir", "models_base_dir", "lfw_dir", "lfw_pairs", "pretrained_model",
                 "filter_filename", "learning_rate_schedule_file"):  # fmt: skip
        value = getattr(config, name)
        if value is not None:
            changes[name] = Path(value).expanduser().absolute()
    return dataclasses.replace(config, **changes)


def check_config(config: TrainConfig) -> None:
    """Reject settings that would fail later with an obscure error (before any data is read).

    Every option's range and choices come from its declaration (``TrainConfig``); the loss's
    objective adds its own checks (a triplet batch holds whole triplets).

    Raises:
        InputError: a value out of its option's range or choices, an unknown loss or model, a
            batch the objective cannot use, a missing schedule file.
    """
    from facenet_cli.options import check_options
    from facenet_cli.train.registry import objective_class

    check_options(config)
    objective_class(config.loss).check_config(config)
    if config.learning_rate <= 0 and config.learning_rate_schedule_file is None:
        raise InputError("--learning-rate <= 0 needs --learning-rate-schedule-file")
    if config.model_def is not None:
        from facenet_cli.models.registry import resolve_model_def

        resolve_model_def(config.model_def)  # an unknown model fails before any run directory
    if config.learning_rate_schedule_file is not None and config.learning_rate <= 0:
        if not Path(config.learning_rate_schedule_file).is_file():
            raise InputError(f"{config.learning_rate_schedule_file}: schedule file not found")


def check_paths(config: TrainConfig) -> None:
    """Evaluation data named on the command line must exist.

    Raises:
        InputError: a missing ``--lfw-dir``, a missing or malformed pairs file.
    """
    if config.lfw_dir is not None:
        if not Path(config.lfw_dir).is_dir():
            raise InputError(f"{config.lfw_dir}: --lfw-dir is not a directory")
        if config.lfw_pairs is None or not Path(config.lfw_pairs).is_file():
            raise InputError(f"{config.lfw_pairs}: pairs file not found (--lfw-pairs)")
        from facenet_cli.data.pairs import read_pairs

        read_pairs(config.lfw_pairs)  # a malformed line fails now, not after the first epoch
    benchmark_sets(config)  # so does a missing or malformed benchmark


def benchmark_sets(config: TrainConfig) -> list[Any]:
    """The ``--benchmark`` sets of a run, read (a pack's images still encoded).

    Raises:
        InputError: a spec that is not NAME=PATH of a registered benchmark, data it cannot read.
    """
    from facenet_cli.data.benchmark_sets import load_benchmark, parse_spec

    return [load_benchmark(*parse_spec(spec)) for spec in config.benchmark]


def read_classes(config: TrainConfig, reporter: Reporter) -> list[ImageClass]:
    """The dataset's classes, with a warning for files that are not images and for folders
    inside class folders (not read), whatever the loss."""
    assert config.data_dir is not None
    classes, nested = scan_dataset(config.data_dir)
    for note in (non_image_warning(classes), subfolder_warning(nested)):
        if note is not None:
            reporter.warning(note)
    return classes


def left_out_files(classes: list[ImageClass]) -> list[str]:
    """What the listing left out of the class folders, in words (for the start of a run)."""
    others = sum(len(c.non_images) for c in classes)
    return [f"{others} files that are not images"] if others else []


def standardization(config: TrainConfig) -> str:
    """The sidecar's name for the run's image standardisation."""
    return "fixed" if config.use_fixed_image_standardization else "per_image"


def model_info(config: TrainConfig) -> ModelInfo:
    """The sidecar of the model a run trains (what ``build_model`` builds it from)."""
    from facenet_cli.models.sidecar import ModelInfo

    assert config.model_def is not None, "resolve_config names the model"
    return ModelInfo(
        model_def=config.model_def,
        embedding_size=config.embedding_size,
        image_size=config.image_size,
        standardization=standardization(config),
        keep_probability=config.keep_probability,
        weight_decay=config.weight_decay,
        flip_fusion=True if config.flip_fusion else None,
    )


def with_alignment(info: ModelInfo, data_dir: str | Path | None) -> ModelInfo:
    """``info`` with the alignment of the training data recorded (unchanged when unknown)."""
    from facenet_cli.align.journal import journal_alignment

    settings = journal_alignment(data_dir)
    if settings is None:
        return info
    return dataclasses.replace(
        info,
        align_image_size=int(settings["image_size"]),
        align_margin=int(settings["margin"]),
        align_mode=str(settings.get("mode", "crop")),
    )
