"""``facenet demo``: the whole recipe on the built-in demo faces, stage by stage, in minutes.

Each stage is a real command with the demo's arguments: ``facenet align`` for each split of the
demo photos, ``facenet train`` (a small CNN with triplet loss, evaluated on the held-out
identities' pairs after each epoch) and ``facenet validate`` on the final model. The configs are
built by parsing those very command lines with the CLI's own parser, so ``facenet demo --dry-run``
prints exactly what runs and users can run the same commands on their own data.

Before training, two reference points are measured on the same held-out pairs with the same
protocol: raw pixels (standardised, as a flat vector) and the untrained network (the run's own
initial weights). The summary table then shows how far training moved the numbers.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.config import (
    AlignConfig,
    DemoConfig,
    TrainConfig,
    ValidateConfig,
    demo_dir,
    from_params,
)
from facenet_cli.data.demo_faces import DEMO_IMAGE_SIZE, DEMO_MARGIN, DemoPaths, demo_paths
from facenet_cli.evaluate.metrics import EvaluationResult

# Training settings for the demo, tuned by measuring real runs on a busy 2-core CPU. The demo faces
# come from 25 x 25 px crops, so ``demo_small`` (the small model behind a 2 x 2 average pool)
# sees the whole 160 px crop at a quarter of the cost. Selection rounds of 35 people x 5 images
# embedded in training mode (batch statistics) give fresh triplets every few steps, and the
# wider margin keeps more of them active; together they learn several times faster here than
# the original's 45 x 40 rounds.
TRAIN_IMAGE_SIZE = DEMO_IMAGE_SIZE
TRAIN_OPTIONS: dict[str, Any] = {
    "model_def": "facenet_cli.demo:demo_small",
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


@dataclass(frozen=True)
class DemoCommand:
    """One stage: the ``facenet`` sub-command and its arguments."""

    name: str
    args: tuple[str, ...]

    @property
    def line(self) -> str:
        """The shell command line (``facenet train --data-dir ...``)."""
        return shlex.join(["facenet", self.name, *self.args])


@dataclass(frozen=True)
class DemoPlan:
    """What the demo runs: its folders and the four commands."""

    paths: DemoPaths
    logs_dir: Path
    models_dir: Path
    align_train: DemoCommand
    align_test: DemoCommand
    train: DemoCommand
    epochs: int

    def validate(self, run_dir: Path | str) -> DemoCommand:
        """The ``validate`` command for the model trained in ``run_dir``."""
        return DemoCommand(
            "validate",
            (str(self.paths.aligned_test), str(run_dir), "--lfw-pairs", str(self.paths.pairs)),
        )

    def commands(self, run_dir: Path | str) -> list[DemoCommand]:
        return [self.align_train, self.align_test, self.train, self.validate(run_dir)]


@dataclass
class DemoResult:
    """The demo's figures (fractions in 0..1; ``val_rate`` at FAR ``far_target``)."""

    baseline_accuracy: float
    baseline_auc: float
    untrained_accuracy: float
    untrained_auc: float
    accuracy: float
    accuracy_std: float
    val_rate: float
    far: float
    far_target: float
    auc: float
    eer: float
    seconds: float
    stage_seconds: dict[str, float]
    run_dir: Path
    log_dir: Path
    steps: int
    nrof_pairs: int
    commands: list[str] = field(default_factory=list)

    @property
    def board_command(self) -> str:
        return shlex.join(["facenet", "board", str(self.log_dir.parent)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""

        def num(value: float) -> float | None:
            return round(float(value), 6) if np.isfinite(value) else None

        return {
            "baseline_accuracy": num(self.baseline_accuracy),
            "baseline_auc": num(self.baseline_auc),
            "untrained_accuracy": num(self.untrained_accuracy),
            "untrained_auc": num(self.untrained_auc),
            "accuracy": num(self.accuracy),
            "accuracy_std": num(self.accuracy_std),
            "val_rate": num(self.val_rate),
            "far": num(self.far),
            "far_target": self.far_target,
            "auc": num(self.auc),
            "eer": num(self.eer),
            "seconds": round(self.seconds, 1),
            "stage_seconds": {k: round(v, 1) for k, v in self.stage_seconds.items()},
            "run_dir": str(self.run_dir),
            "log_dir": str(self.log_dir),
            "steps": self.steps,
            "pairs": self.nrof_pairs,
            "commands": self.commands,
            "board_command": self.board_command,
        }


# ----------------------------------------------------------------------------------- planning


def training_epochs(minutes: float) -> int:
    """Epochs of ``EPOCH_SIZE`` steps that fill ``minutes`` at ``STEPS_PER_MINUTE`` (at least 1)."""
    return max(1, round(minutes * STEPS_PER_MINUTE / EPOCH_SIZE))


def _option(name: str, value: Any) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + flag[2:]]
    return [flag, str(value)]


def make_plan(config: DemoConfig) -> DemoPlan:
    """The demo's folders and commands for ``config`` (nothing is run or written)."""
    root = Path(config.out).expanduser().resolve() if config.out is not None else demo_dir()
    paths = demo_paths(root)
    logs_dir, models_dir = paths.root / "logs", paths.root / "models"
    size = ["--image-size", str(DEMO_IMAGE_SIZE), "--margin", str(DEMO_MARGIN)]
    epochs = training_epochs(config.minutes)
    options = {
        "data_dir": paths.aligned_train,
        "lfw_dir": paths.aligned_test,
        "lfw_pairs": paths.pairs,
        "logs_base_dir": logs_dir,
        "models_base_dir": models_dir,
        **TRAIN_OPTIONS,
        "epoch_size": EPOCH_SIZE,
        "max_nrof_epochs": epochs,
        "seed": config.seed,
    }
    train_args = [arg for name, value in options.items() for arg in _option(name, value)]
    return DemoPlan(
        paths=paths,
        logs_dir=logs_dir,
        models_dir=models_dir,
        align_train=DemoCommand("align", (str(paths.raw_train), str(paths.aligned_train), *size)),
        align_test=DemoCommand("align", (str(paths.raw_test), str(paths.aligned_test), *size)),
        train=DemoCommand("train", tuple(train_args)),
        epochs=epochs,
    )


def parse_command(command: DemoCommand) -> dict[str, Any]:
    """The parameters the CLI's own parser gives ``command`` (what ``facenet ...`` would run).

    Raises:
        The parser's usage error when the arguments do not parse.
    """
    import typer.main

    from facenet_cli.cli import app

    group = typer.main.get_command(app)
    cli_command = group.commands[command.name]  # type: ignore[attr-defined]
    with cli_command.make_context(command.name, list(command.args)) as ctx:
        return dict(ctx.params)


def command_config(command: DemoCommand, cls: type) -> Any:
    """The frozen config ``cls`` that ``facenet <command>`` builds."""
    return from_params(cls, parse_command(command))


# --------------------------------------------------------------------------------- reference


def raw_pixel_embeddings(images: np.ndarray) -> np.ndarray:
    """Each image as one flat vector of per-image standardised pixels, L2-normalised.

    Args:
        images: ``(N, H, W, C)`` raw pixels.

    Returns:
        ``(N, H * W * C)`` float32 unit vectors (the "raw pixel" baseline's embeddings).
    """
    x = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    x = x - x.mean(axis=1, keepdims=True)
    # tf.image.per_image_standardization's floor on the deviation keeps flat images finite.
    floor = 1.0 / np.sqrt(max(x.shape[1], 1))
    x = x / np.maximum(x.std(axis=1, keepdims=True), floor)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _evaluate(embed: Callable[[np.ndarray], np.ndarray], train: TrainConfig) -> EvaluationResult:
    from facenet_cli.evaluate.validate import evaluate_on_pairs

    assert train.lfw_dir is not None and train.lfw_pairs is not None
    report = evaluate_on_pairs(
        embed,
        train.lfw_dir,
        train.lfw_pairs,
        image_size=train.image_size,
        batch_size=train.lfw_batch_size,
        distance_metric=train.lfw_distance_metric,
        nrof_folds=train.lfw_nrof_folds,
    )
    return report.result


def baseline_result(train: TrainConfig) -> EvaluationResult:
    """The protocol on the run's pairs with raw standardised pixels (the network's crop)."""
    return _evaluate(raw_pixel_embeddings, train)


def untrained_result(train: TrainConfig) -> EvaluationResult:
    """The protocol on the run's pairs with the network the run starts from (same weights)."""
    import keras

    from facenet_cli.models.loading import embedding_fn
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo

    assert train.model_def is not None
    # The training loop seeds the same way right before it builds its model.
    keras.utils.set_random_seed(train.seed)
    model = create_model(
        train.model_def,
        train.embedding_size,
        train.image_size,
        keep_probability=train.keep_probability,
        weight_decay=train.weight_decay,
    )
    info = ModelInfo(
        model_def=train.model_def,
        embedding_size=train.embedding_size,
        image_size=train.image_size,
        standardization="fixed" if train.use_fixed_image_standardization else "per_image",
    )
    return _evaluate(embedding_fn(model, info), train)


# -------------------------------------------------------------------------------------- output


def print_dry_run(plan: DemoPlan) -> None:
    """The four commands, runnable as they are once ``RUN`` names the run ``train`` wrote."""
    run = plan.models_dir / "RUN"
    for command in plan.commands(run):
        print(command.line)
    print(
        f"# RUN: the run name `facenet train` prints; watch it with: facenet board {plan.logs_dir}"
    )


def summary_table(result: DemoResult) -> Any:
    """A Rich table of the figures of raw pixels, the untrained and the trained network."""
    from rich.table import Table

    def pct(value: float) -> str:
        return f"{value:.3f}" if np.isfinite(value) else "-"

    table = Table(
        title=f"facenet demo: {result.nrof_pairs} pairs of 30 held-out identities",
        title_justify="left",
    )
    table.add_column("embedding")
    table.add_column("accuracy", justify="right")
    table.add_column(f"VAL@FAR={result.far_target:g}", justify="right")
    table.add_column("AUC", justify="right")
    table.add_column("EER", justify="right")
    for name, accuracy, auc in (
        ("raw pixels (standardised)", result.baseline_accuracy, result.baseline_auc),
        ("untrained network", result.untrained_accuracy, result.untrained_auc),
    ):
        table.add_row(name, pct(accuracy), "", pct(auc), "")
    table.add_row(
        f"trained, {result.steps} steps",
        f"[bold]{result.accuracy:.3f}[/] ± {result.accuracy_std:.3f}",
        pct(result.val_rate),
        pct(result.auc),
        pct(result.eer),
    )
    return table


def timing_line(result: DemoResult) -> str:
    """``time: photos 21 s, align 53 s, ...; total 209 s``."""
    stages = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result.stage_seconds.items())
    return f"time: {stages}; total {result.seconds:.0f} s"


# ----------------------------------------------------------------------------------------- run


class _Stages:
    """Times the stages and announces each one with its command line."""

    def __init__(self, console: Any, total: int) -> None:
        self.console = console
        self.total = total
        self.number = 0
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str, title: str, lines: tuple[str, ...] = ()) -> Iterator[None]:
        self.number += 1
        self.console.print(f"[bold cyan][{self.number}/{self.total}] {title}[/]", highlight=False)
        for line in lines:
            self.console.print(f"  $ {line}", highlight=False, soft_wrap=True)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def _build_photos(paths: DemoPaths) -> None:
    from facenet_cli.data.demo_faces import build_demo_photos, demo_photos_ready
    from facenet_cli.progress import progress_bars

    if demo_photos_ready(paths.root):
        return
    with progress_bars(transient=True) as progress:
        task = progress.add_task("photos", total=None)

        def on_photo(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        build_demo_photos(paths.root, on_photo=on_photo)


def run_demo(config: DemoConfig) -> DemoResult | None:
    """Run ``facenet demo``: photos, align, baselines, train, validate, then a summary.

    Args:
        config: ``--minutes`` (training length), ``--out``, ``--seed``, ``--dry-run``, ``--json``.

    Returns:
        The figures, or None with ``--dry-run``.

    Raises:
        FacenetError: a stage failed (its own one-line message).
    """
    plan = make_plan(config)
    if config.dry_run:
        print_dry_run(plan)
        return None
    from rich.console import Console

    from facenet_cli.progress import console

    start = time.perf_counter()
    stages = _Stages(console, total=5)
    # With --json, stdout carries the JSON object only: the stages' own tables go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if config.json else contextlib.nullcontext()
    with quiet:
        with stages.stage("photos", f"demo photos in {plan.paths.root / 'raw'}"):
            _build_photos(plan.paths)
        aligns = (plan.align_train, plan.align_test)
        with stages.stage("align", "align both splits (MTCNN)", tuple(c.line for c in aligns)):
            from facenet_cli.align.pipeline import run_align

            for command in aligns:
                run_align(command_config(command, AlignConfig))
        train_config: TrainConfig = command_config(plan.train, TrainConfig)
        with stages.stage("reference", "reference points on the held-out pairs"):
            baseline = baseline_result(train_config)
            untrained = untrained_result(train_config)
            console.print(
                f"  accuracy: raw pixels {baseline.accuracy_mean:.3f}, "
                f"untrained network {untrained.accuracy_mean:.3f}",
                highlight=False,
            )
        with stages.stage("train", "train", (plan.train.line,)):
            from facenet_cli.train.loop import run_train

            run = run_train(train_config)
        validate = plan.validate(run.run_dir)
        with stages.stage("validate", "validate the trained model", (validate.line,)):
            from facenet_cli.evaluate.validate import run_validate

            report = run_validate(command_config(validate, ValidateConfig))
    r = report.result
    result = DemoResult(
        baseline_accuracy=baseline.accuracy_mean,
        baseline_auc=baseline.auc,
        untrained_accuracy=untrained.accuracy_mean,
        untrained_auc=untrained.auc,
        accuracy=r.accuracy_mean,
        accuracy_std=r.accuracy_std,
        val_rate=r.val_mean,
        far=r.far_mean,
        far_target=r.far_target,
        auc=r.auc,
        eer=r.eer,
        seconds=time.perf_counter() - start,
        stage_seconds=dict(stages.seconds),
        run_dir=Path(run.run_dir),
        log_dir=Path(run.log_dir),
        steps=run.step,
        nrof_pairs=report.nrof_pairs_used,
        commands=[c.line for c in plan.commands(run.run_dir)],
    )
    if config.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        out = Console(highlight=False)
        out.print(summary_table(result))
        out.print(timing_line(result), soft_wrap=True)
        out.print("Watch the run (and any later ones) in the terminal:", soft_wrap=True)
        out.print(f"  {result.board_command}", soft_wrap=True)
    return result


# ------------------------------------------------------------------------------------- model


def demo_small(
    image_size: int = 160,
    embedding_size: int = 128,
    keep_probability: float = 1.0,
    weight_decay: float = 0.0,
    **kwargs: Any,
) -> Any:
    """The ``small`` model behind a 2 x 2 average pool: the whole face crop at a quarter the cost.

    The demo faces come from 25 x 25 px crops, so halving the 160 px aligned images loses nothing
    while the network still sees the whole crop, background included.

    Args:
        image_size: side of the square input (even, at least 64).
        embedding_size: size of the embedding.
        keep_probability: dropout keep probability before the bottleneck.
        weight_decay: L2 weight decay on every kernel.
        **kwargs: passed to ``small`` (``width``).

    Returns:
        A ``keras.Model`` named ``demo_small``.
    """
    import keras

    from facenet_cli.models.small import small

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = keras.layers.AveragePooling2D(2, name="halve")(inputs)
    body = small(image_size // 2, embedding_size, keep_probability, weight_decay, **kwargs)
    return keras.Model(inputs, body(x), name="demo_small")
