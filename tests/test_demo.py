"""The demo layer: its settings, the printed commands, the raw-pixel baseline, one real demo."""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.config import AlignConfig, DemoConfig, TrainConfig, ValidateConfig, from_params
from facenet_cli.data.demo_faces import demo_paths
from facenet_cli.demo.plan import make_plan
from facenet_cli.demo.run import raw_pixel_embeddings
from facenet_cli.demo.settings import (
    EPOCH_SIZE,
    TRAIN_IMAGE_SIZE,
    TRIPLET_OPTIONS,
    fill_train_params,
    training_epochs,
)
from facenet_cli.errors import InputError


def parse(line: str) -> tuple[str, dict[str, Any]]:
    """The command name and parameters the CLI's own parser gives ``line``."""
    _, name, *args = shlex.split(line)
    group = typer.main.get_command(app)
    with group.make_context("facenet", [name, *args]) as group_ctx:
        command = group.get_command(group_ctx, name)
        assert command is not None
        with command.make_context(name, args, parent=group_ctx) as ctx:
            return name, dict(ctx.params)


def test_dry_run_prints_the_four_commands_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--dry-run", "--out", str(out), "--seed", "7"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("facenet ")]
    parsed = [parse(line) for line in lines]
    assert [name for name, _ in parsed] == ["align", "align", "train", "validate"]
    assert not out.exists()

    # Every line parses with the CLI's own parser into the config the demo runs.
    plan = make_plan(DemoConfig(out=out, seed=7))
    align_train, align_test = (from_params(AlignConfig, p) for _, p in parsed[:2])
    assert (align_train, align_test) == (plan.align_train, plan.align_test)
    assert (align_train.input_dir, align_train.output_dir) == (
        out / "raw" / "train",
        out / "aligned" / "train",
    )
    assert align_test.output_dir == out / "aligned" / "test"
    assert (align_train.image_size, align_train.margin) == (160, 32)
    train = from_params(TrainConfig, parsed[2][1])
    assert train == plan.train
    assert train.data_dir == str(out / "aligned" / "train")
    assert train.lfw_dir == out / "aligned" / "test"
    assert train.lfw_pairs == out / "pairs.txt"
    assert train.models_base_dir == out / "models" and train.logs_base_dir == out / "logs"
    assert (train.model_def, train.image_size, train.seed) == (
        TRIPLET_OPTIONS["model_def"],
        TRAIN_IMAGE_SIZE,
        7,
    )
    assert train.epoch_size == EPOCH_SIZE
    assert train.deterministic  # the same figures for the seed on any core count
    assert train.max_nrof_epochs == training_epochs(DemoConfig().minutes)
    validate = from_params(ValidateConfig, parsed[3][1])
    assert validate == plan.validate(out / "models" / "RUN")
    assert validate.lfw_dir == out / "aligned" / "test"
    assert validate.model is not None and validate.model.parent == out / "models"
    # The plan the real run uses is the same text.
    assert plan.lines(out / "models" / "RUN") == lines


@pytest.mark.parametrize("loss", ["cosface", "softmax"])
def test_a_classifier_loss_demo_prints_what_it_trains(tmp_path: Path, loss: str) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--dry-run", "--out", str(out), "--loss", loss])
    assert result.exit_code == 0, result.output
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("facenet train ")]
    train = from_params(TrainConfig, parse(line)[1])
    assert train == make_plan(DemoConfig(out=out, loss=loss)).train
    assert (train.loss, train.optimizer, train.model_def) == (loss, "ADAM", "demo_small")
    assert train.batch_size == 64 and train.moving_average_decay == 0.999
    # No selection rounds: more steps in the same minutes than the triplet demo.
    assert train.max_nrof_epochs == training_epochs(DemoConfig().minutes, loss)
    assert train.max_nrof_epochs > training_epochs(DemoConfig().minutes)
    # The margin scale belongs to the margin losses, the prelogits penalty to the softmax.
    assert (train.margin_scale is None) == (loss == "softmax")
    assert (train.prelogits_norm_loss_factor > 0) == (loss == "softmax")


def test_demo_refuses_an_unknown_loss(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["demo", "--dry-run", "--out", str(tmp_path / "d"), "--loss", "cosine"]
    )
    assert result.exit_code == 2
    assert "'cosine' is not one of triplet, softmax, arcface, cosface" in result.output
    with pytest.raises(InputError, match="--loss 'cosine'"):
        make_plan(DemoConfig(out=tmp_path / "d", loss="cosine"))


def test_minutes_set_the_training_length() -> None:
    short = make_plan(DemoConfig(minutes=1.0, out=Path("/x")))
    long = make_plan(DemoConfig(minutes=4.0, out=Path("/x")))
    assert long.epochs == pytest.approx(4 * short.epochs, abs=1)
    assert training_epochs(0.01) == 1


def test_train_without_data_takes_the_demo_settings_but_keeps_what_was_given(
    tmp_path: Path,
) -> None:
    paths = demo_paths(tmp_path / "demo")
    _, given = parse("facenet train --epoch-size 1000 --max-nrof-epochs 500 --alpha 0.2")
    config = from_params(TrainConfig, fill_train_params(given, paths))
    # Given on purpose, though equal to the library's defaults: kept.
    assert (config.epoch_size, config.max_nrof_epochs, config.alpha) == (1000, 500, 0.2)
    assert config.data_dir == str(paths.aligned_train) and config.lfw_pairs == paths.pairs
    assert config.model_def == "demo_small" and config.learning_rate == 0.05
    # Not given: the demo's, the same settings `facenet demo` trains with.
    _, bare = parse("facenet train")
    demo = from_params(TrainConfig, fill_train_params(bare, paths))
    assert demo == make_plan(DemoConfig(out=paths.root)).train
    # A classifier loss takes the classifier demo's settings, the given ones kept.
    _, cosface = parse("facenet train --loss cosface --weight-decay 0")
    config = from_params(TrainConfig, fill_train_params(cosface, paths))
    plan = make_plan(DemoConfig(out=paths.root, loss="cosface")).train
    assert config.weight_decay == 0.0 and plan.weight_decay > 0.0
    assert config == dataclasses.replace(plan, weight_decay=0.0)


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
    from facenet_cli.models.registry import create_model, model_names

    assert TRIPLET_OPTIONS["model_def"] in model_names()
    model = create_model(TRIPLET_OPTIONS["model_def"], embedding_size=8, image_size=64)
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
