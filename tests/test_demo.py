"""``facenet demo``: the printed commands, the raw-pixel baseline and one shortened real demo."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.config import AlignConfig, DemoConfig, TrainConfig, ValidateConfig
from facenet_cli.demo import (
    EPOCH_SIZE,
    TRAIN_IMAGE_SIZE,
    TRAIN_OPTIONS,
    DemoCommand,
    command_config,
    make_plan,
    raw_pixel_embeddings,
    training_epochs,
)


def test_dry_run_prints_the_four_commands_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--dry-run", "--out", str(out), "--seed", "7"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("facenet ")]
    assert [shlex.split(line)[1] for line in lines] == ["align", "align", "train", "validate"]
    assert not out.exists()

    # Every line parses with the CLI's own parser into the config the demo runs.
    commands = [DemoCommand(shlex.split(line)[1], tuple(shlex.split(line)[2:])) for line in lines]
    align_train, align_test = (command_config(c, AlignConfig) for c in commands[:2])
    assert (align_train.input_dir, align_train.output_dir) == (
        out / "raw" / "train",
        out / "aligned" / "train",
    )
    assert align_test.output_dir == out / "aligned" / "test"
    assert (align_train.image_size, align_train.margin) == (160, 32)
    train = command_config(commands[2], TrainConfig)
    assert train.data_dir == str(out / "aligned" / "train")
    assert train.lfw_dir == out / "aligned" / "test"
    assert train.lfw_pairs == out / "pairs.txt"
    assert train.models_base_dir == out / "models" and train.logs_base_dir == out / "logs"
    assert (train.model_def, train.image_size, train.seed) == (
        TRAIN_OPTIONS["model_def"],
        TRAIN_IMAGE_SIZE,
        7,
    )
    assert train.epoch_size == EPOCH_SIZE
    assert train.max_nrof_epochs == training_epochs(DemoConfig().minutes)
    validate = command_config(commands[3], ValidateConfig)
    assert validate.lfw_dir == out / "aligned" / "test"
    assert validate.model is not None and validate.model.parent == out / "models"
    # The plan the real run uses is the same text.
    plan = make_plan(DemoConfig(out=out, seed=7))
    assert [c.line for c in plan.commands(out / "models" / "RUN")] == lines


def test_minutes_set_the_training_length() -> None:
    short = make_plan(DemoConfig(minutes=1.0, out=Path("/x")))
    long = make_plan(DemoConfig(minutes=4.0, out=Path("/x")))
    assert command_config(long.train, TrainConfig).max_nrof_epochs == pytest.approx(
        4 * command_config(short.train, TrainConfig).max_nrof_epochs, abs=1
    )
    assert training_epochs(0.01) == 1


def test_raw_pixel_embeddings_are_standardised_unit_vectors() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, 8, 8, 3)).astype(np.float32)
    flat = np.full((1, 8, 8, 3), 77.0, np.float32)
    emb = raw_pixel_embeddings(np.concatenate([images, flat]))
    assert emb.shape == (4, 8 * 8 * 3) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb[:3], axis=1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(emb)) and np.allclose(emb[3], 0.0)
    # Brightness and contrast changes do not move a standardised image.
    np.testing.assert_allclose(raw_pixel_embeddings(images * 0.5 + 40.0), emb[:3], atol=1e-5)


def test_demo_model_sees_the_whole_crop_at_half_resolution() -> None:
    from facenet_cli.models.registry import create_model

    model = create_model(TRAIN_OPTIONS["model_def"], embedding_size=8, image_size=64)
    images = np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)
    out = np.asarray(model(images, training=False))
    assert out.shape == (2, 8) and np.all(np.isfinite(out))
    # The body is the registered small model built for the halved input.
    body = model.layers[-1]
    assert body.name == "small" and tuple(body.inputs[0].shape[1:3]) == (32, 32)


@pytest.mark.slow
def test_short_demo_learns_beyond_the_untrained_network() -> None:
    """The real pipeline with a 90 s training budget (the demo cache is shared per session)."""
    result = CliRunner().invoke(app, ["demo", "--minutes", "1.5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("baseline_accuracy", "untrained_accuracy", "accuracy", "val_rate", "auc", "eer",
                "seconds", "run_dir"):  # fmt: skip
        assert key in summary
    assert summary["accuracy"] >= summary["untrained_accuracy"] + 0.15
    assert summary["accuracy"] > summary["baseline_accuracy"]
    assert 0.5 < summary["auc"] <= 1.0 and 0.0 <= summary["eer"] < 0.5
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "model.json").is_file() and (run_dir / "export").is_dir()
    assert summary["board_command"].startswith("facenet board ")
    assert summary["steps"] == training_epochs(1.5) * EPOCH_SIZE
