"""The demo's settings, in one place: the folders, the alignment and the training of the demo.

Training was tuned by measuring real runs on a busy 2-core CPU. The demo faces come from
25 x 25 px crops, so ``demo_small`` (the small model behind a 2 x 2 average pool) sees the whole
160 px crop at a quarter of the cost. Selection rounds of 35 people x 5 images embedded in
training mode (batch statistics) give fresh triplets every few steps, and the wider margin keeps
more of them active; together they learn several times faster here than the original's 45 x 40
rounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facenet_cli.config import AlignConfig, DemoConfig, TrainConfig
from facenet_cli.data.demo_faces import DEMO_IMAGE_SIZE, DEMO_MARGIN, DemoPaths

TRAIN_IMAGE_SIZE = DEMO_IMAGE_SIZE
TRAIN_OPTIONS: dict[str, Any] = {
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
}
EPOCH_SIZE = 20
# Training steps a busy 2-core CPU takes a minute for: ``--minutes`` becomes a step count, so a
# run is reproducible (a faster or idle machine finishes sooner).
STEPS_PER_MINUTE = 120


def training_epochs(minutes: float) -> int:
    """Epochs of ``EPOCH_SIZE`` steps that fill ``minutes`` at ``STEPS_PER_MINUTE`` (at least 1)."""
    return max(1, round(minutes * STEPS_PER_MINUTE / EPOCH_SIZE))


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


def train_settings(paths: DemoPaths, minutes: float = DemoConfig().minutes) -> dict[str, Any]:
    """The demo's ``facenet train`` settings: its folders and the training it was tuned for."""
    return {
        "data_dir": str(paths.aligned_train),
        "lfw_dir": paths.aligned_test,
        "lfw_pairs": paths.pairs,
        "logs_base_dir": logs_dir(paths),
        "models_base_dir": models_dir(paths),
        **TRAIN_OPTIONS,
        "epoch_size": EPOCH_SIZE,
        "max_nrof_epochs": training_epochs(minutes),
    }


def train_config(paths: DemoPaths, minutes: float, seed: int) -> TrainConfig:
    """The run ``facenet demo`` trains."""
    return TrainConfig(**train_settings(paths, minutes), seed=seed)


def fill_train_params(params: dict[str, Any], paths: DemoPaths) -> dict[str, Any]:
    """``facenet train`` parameters with no data: what was not given (None) is the demo's.

    An option given on the command line (or in ``--config``) is kept, whatever its value.
    """
    demo = train_settings(paths)
    if params.get("lfw_dir") is not None:
        del demo["lfw_pairs"]  # pairs of the user's own evaluation folder, not the demo's
    return {**params, **{k: v for k, v in demo.items() if params.get(k) is None}}
