"""The demo's settings, in one place: the folders, the alignment and the training of the demo.

Training was tuned by measuring real runs on a busy 2-core CPU. The demo faces come from
25 x 25 px crops, so ``demo_small`` (the small model behind a 2 x 2 average pool) sees the whole
160 px crop at a quarter of the cost. Selection rounds of 35 people x 5 images embedded in
training mode (batch statistics) give fresh triplets every few steps, and the wider margin keeps
more of them active; together they learn several times faster here than the original's 45 x 40
rounds.

``facenet demo --loss softmax|arcface|cosface`` trains the same model as a classifier of the
demo's training people instead, with the CPU recipe's optimiser settings
(``benchmarks/quality/lfw_dev_cpu.toml``, chosen on real LFW people): no selection rounds, so
more steps a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_cli.config import AlignConfig, DemoConfig, TrainConfig
from facenet_cli.data.demo_faces import DEMO_IMAGE_SIZE, DEMO_MARGIN, DemoPaths
from facenet_cli.errors import InputError
from facenet_cli.train.registry import loss_names

TRAIN_IMAGE_SIZE = DEMO_IMAGE_SIZE
TRIPLET_OPTIONS: dict[str, Any] = {
    "model_def": "demo_small",
    "image_size": TRAIN_IMAGE_SIZE,
    "people_per_batch": 35,
    "images_per_person": 5,
    "batch_size": 90,
    "optimizer": "ADAGRAD",
    "learning_rate": 0.05,
    "alpha": 0.4,
    "random_flip": True,
    "selection_mode": "training",
    # The same figures for the seed on any core count (README, "What the demo does"); its 2
    # threads per op are what TensorFlow uses by default on the 2 cores the demo was tuned on.
    "deterministic": True,
}
# The classifier losses: the CPU recipe's optimiser (Adam 0.05, constant; weights' moving
# average 0.999; weight decay 5e-4; s = 30 for the margin losses, which trains faster than the
# paper's 64 on a few hundred people) on the demo's model and faces.
CLASSIFIER_OPTIONS: dict[str, Any] = {
    "model_def": "demo_small",
    "image_size": TRAIN_IMAGE_SIZE,
    "batch_size": 64,
    "optimizer": "ADAM",
    "learning_rate": 0.05,
    "moving_average_decay": 0.999,
    "weight_decay": 0.0005,
    "random_flip": True,
    "deterministic": True,
}
MARGIN_OPTIONS: dict[str, Any] = {"margin_scale": 30.0}
# A plain softmax: the prelogits L1 norm penalty of the original's best released models.
SOFTMAX_OPTIONS: dict[str, Any] = {"prelogits_norm_loss_factor": 0.0005}
EPOCH_SIZE = 20
# Training steps a busy 2-core CPU takes a minute for: ``--minutes`` becomes a step count, so the
# load does not change a run (a faster or idle machine finishes sooner). A classifier step has
# no selection round to pay for.
STEPS_PER_MINUTE = {"triplet": 120, "classifier": 200}


def train_options(loss: str = "triplet") -> dict[str, Any]:
    """The demo's training settings for ``loss`` (one of ``registry.loss_names()``).

    Raises:
        InputError: an unknown ``loss``.
    """
    if loss == "triplet":
        return dict(TRIPLET_OPTIONS)
    if loss not in loss_names():
        raise InputError(f"--loss {loss!r}: choose {', '.join(loss_names())}")
    extra = SOFTMAX_OPTIONS if loss == "softmax" else MARGIN_OPTIONS
    return {**CLASSIFIER_OPTIONS, **extra, "loss": loss}


def training_epochs(minutes: float, loss: str = "triplet") -> int:
    """Epochs of ``EPOCH_SIZE`` steps that fill ``minutes`` at the loss's steps a minute
    (at least 1)."""
    rate = STEPS_PER_MINUTE["triplet" if loss == "triplet" else "classifier"]
    return max(1, round(minutes * rate / EPOCH_SIZE))


def logs_dir(paths: DemoPaths) -> Path:
    """Where the demo's runs write their event files."""
    return paths.root / "logs"


def models_dir(paths: DemoPaths) -> Path:
    """Where the demo's runs write their checkpoints."""
    return paths.root / "models"


def align_config(source: Path, target: Path, **options: Any) -> AlignConfig:
    """Aligning one split of the demo photos (``options``: those that do not change the crops)."""
    return AlignConfig(
        input_dir=source,
        output_dir=target,
        image_size=DEMO_IMAGE_SIZE,
        margin=DEMO_MARGIN,
        **options,
    )


def train_settings(
    paths: DemoPaths, minutes: float = DemoConfig().minutes, loss: str = "triplet"
) -> dict[str, Any]:
    """The demo's ``facenet train`` settings: its folders and the training it was tuned for."""
    return {
        "data_dir": str(paths.aligned_train),
        "lfw_dir": paths.aligned_test,
        "lfw_pairs": paths.pairs,
        "logs_base_dir": logs_dir(paths),
        "models_base_dir": models_dir(paths),
        **train_options(loss),
        "epoch_size": EPOCH_SIZE,
        "max_nrof_epochs": training_epochs(minutes, loss),
    }


def train_config(paths: DemoPaths, minutes: float, seed: int, loss: str = "triplet") -> TrainConfig:
    """The run ``facenet demo`` trains."""
    return TrainConfig(**train_settings(paths, minutes, loss), seed=seed)


def fill_train_params(params: dict[str, Any], paths: DemoPaths) -> dict[str, Any]:
    """``facenet train`` parameters with no data: what was not given (None) is the demo's, for
    the loss given (the triplet demo's settings, or the classifier demo's).

    An option given on the command line (or in ``--config``) is kept, whatever its value.
    """
    loss = params.get("loss")
    # An unknown loss gets training's own error; the triplet settings fill the rest meanwhile.
    demo = train_settings(paths, loss=loss if loss in loss_names() else "triplet")
    if params.get("lfw_dir") is not None:
        del demo["lfw_pairs"]  # pairs of the user's own evaluation folder, not the demo's
    return {**params, **{k: v for k, v in demo.items() if params.get(k) is None}}
