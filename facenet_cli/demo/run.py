"""``facenet demo``: the whole recipe on the built-in demo faces, stage by stage, in minutes.

Each stage runs the library with a config that ``facenet align``, ``facenet train`` and
``facenet validate`` build from the command line it prints (``plan``), so ``--dry-run`` shows
exactly what runs and users can run the same commands on their own data.

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

from facenet_cli.config import DemoConfig, TrainConfig
from facenet_cli.demo.plan import command_line, make_plan, print_dry_run
from facenet_cli.evaluate.metrics import EvaluationResult, finite_or_none


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
            finite = finite_or_none(value)
            return None if finite is None else round(finite, 6)

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
    from facenet_cli.data.pairs_file import protocol_folds
    from facenet_cli.evaluate.validate import evaluate_on_pairs

    assert train.lfw_dir is not None and train.lfw_pairs is not None
    report = evaluate_on_pairs(
        embed,
        train.lfw_dir,
        train.lfw_pairs,
        image_size=train.image_size,
        batch_size=train.lfw_batch_size,
        distance_metric=train.lfw_distance_metric,
        nrof_folds=protocol_folds(train.lfw_nrof_folds, train.lfw_pairs),
    )
    return report.result


def baseline_result(train: TrainConfig) -> EvaluationResult:
    """The protocol on the run's pairs with raw standardised pixels (the network's crop)."""
    return _evaluate(raw_pixel_embeddings, train)


def untrained_result(train: TrainConfig) -> EvaluationResult:
    """The protocol on the run's pairs with the network the run starts from (same weights)."""
    import keras

    from facenet_cli.models.loading import build_model, embedding_fn
    from facenet_cli.train.settings import model_info

    info = model_info(train)
    # The training loop seeds the same way right before it builds its model.
    keras.utils.set_random_seed(train.seed)
    model = build_model(info)
    return _evaluate(embedding_fn(model, info), train)


# -------------------------------------------------------------------------------------- output


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

    if plan.train.deterministic:
        from facenet_cli.train.graph import configure_determinism

        # Before the first op (the thread count is fixed when TensorFlow starts), so that the
        # alignment and the reference points run with the training's threads too.
        problem = configure_determinism()
        if problem is not None:
            console.print(f"[yellow]warning:[/] {problem}", highlight=False)
    start = time.perf_counter()
    stages = _Stages(console, total=5)
    # With --json, stdout carries the JSON object only: the stages' own tables go to stderr.
    quiet = contextlib.redirect_stdout(sys.stderr) if config.json else contextlib.nullcontext()
    with quiet:
        with stages.stage("photos", f"demo photos in {plan.paths.root / 'raw'}"):
            from facenet_cli.demo.data import build_photos

            build_photos(plan.paths.root)
        with stages.stage("align", "align both splits (MTCNN)", tuple(plan.align_lines())):
            from facenet_cli.align.pipeline import run_align

            for align in (plan.align_train, plan.align_test):
                run_align(align)
        with stages.stage("reference", "reference points on the held-out pairs"):
            baseline = baseline_result(plan.train)
            untrained = untrained_result(plan.train)
            console.print(
                f"  accuracy: raw pixels {baseline.accuracy_mean:.3f}, "
                f"untrained network {untrained.accuracy_mean:.3f}",
                highlight=False,
            )
        with stages.stage("train", "train", (plan.train_line(),)):
            from facenet_cli.train.run import run_train

            run = run_train(plan.train)
        validate = plan.validate(run.run_dir)
        with stages.stage(
            "validate", "validate the trained model", (command_line("validate", validate),)
        ):
            from facenet_cli.evaluate.validate import run_validate

            report = run_validate(validate)
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
        commands=plan.lines(run.run_dir),
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
