"""A run directory as the training loop writes it (the checkpoint contract), for loader tests."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from facenet_cli.models import create_model
from facenet_cli.models.sidecar import ModelInfo, write_model_info

INFO = ModelInfo("small", 32, 40, "per_image")


def perturbed(model, seed: int):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        value = v.numpy()
        if v.path.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 1.5, value.shape).astype(np.float32))
        else:
            v.assign(value + rng.normal(0, 0.05, value.shape).astype(np.float32))
    return model


def write_run(run_dir: Path, with_ema: bool = True, steps=(100, 200)) -> tuple:
    """A run directory as the training loop writes it (the contract in the spec)."""
    model = perturbed(create_model(INFO.model_def, **INFO.build_kwargs()), 1)
    ema = perturbed(create_model(INFO.model_def, **INFO.build_kwargs()), 2)
    step = tf.Variable(0, dtype=tf.int64)
    epoch = tf.Variable(0, dtype=tf.int64)
    parts = dict(model=model, optimizer=keras.optimizers.Adagrad(0.1), step=step, epoch=epoch)
    if with_ema:
        parts["ema_model"] = ema
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(**parts), directory=str(run_dir), max_to_keep=3, checkpoint_name="ckpt"
    )
    for step in steps:
        parts["step"].assign(step)
        manager.save(checkpoint_number=step)
    write_model_info(run_dir, INFO)
    return model, ema
