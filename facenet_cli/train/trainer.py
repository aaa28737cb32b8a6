"""The one training loop, for every objective: feeding, unreadable images, checkpoints, resume,
the moving average, evaluation, events and Ctrl-C.

The objective (``objective.py``, chosen by ``--loss`` through ``registry.py``) says what a batch
is and what a step computes; everything here is the same for all of them. Epochs are exactly
``epoch_size`` steps, so a global step always says where a run is, and a checkpoint taken at any
step resumes it. After each epoch the moving-average model is evaluated on the pairs through the
same code as ``facenet validate``, then by the objective's own evaluation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig
from facenet_cli.errors import FacenetError, TrainingDiverged
from facenet_cli.train import checkpoints as ckpt
from facenet_cli.train.objective import Objective, RoundStats
from facenet_cli.train.reporting import Reporter, StepReport
from facenet_cli.train.schedule import STOP, learning_rate, read_schedule_file
from facenet_cli.train.settings import model_info, standardization, with_alignment

if TYPE_CHECKING:
    from facenet_cli.train.feeder import BatchFeeder
    from facenet_cli.train.interrupt import SigintFlag

# Consecutive calls of ``Objective.batches`` without a single step before the run gives up.
MAX_EMPTY_ROUNDS = 100
# A checkpoint is also written mid-epoch when this long has passed since the last one.
CHECKPOINT_INTERVAL_S = 600.0


class Trainer:
    """State and steps of one run; ``run_train`` drives it.

    Everything is set up here; a failure after the run's folders exist is recorded in its log
    folder (a FAILED marker) and what was opened is closed. ``close`` (or leaving the ``with``
    block) ends the run the same way.

    Args:
        config: the resolved settings.
        reporter: progress and messages.
        objective: what is trained (None: the objective of ``config.loss``).
    """

    def __init__(self, config: TrainConfig, reporter: Reporter,
                 objective: Objective | None = None) -> None:  # fmt: skip
        import keras

        from facenet_cli.train import distribute
        from facenet_cli.train.graph import TrainingGraph, configure_determinism, configure_devices
        from facenet_cli.train.registry import objective_class
        from facenet_cli.train.summaries import Summaries

        assert config.max_nrof_epochs is not None and config.strategy is not None, (
            "resolve_config fills these in"
        )
        self.config = config
        self.reporter = reporter
        self.max_nrof_epochs: int = config.max_nrof_epochs
        self.schedule = (
            read_schedule_file(config.learning_rate_schedule_file)
            if config.learning_rate <= 0 and config.learning_rate_schedule_file is not None
            else None
        )
        self.objective = objective or objective_class(config.loss)(config, reporter)
        self.classes = self.objective.load_classes()
        reporter.message(self.objective.found.text(config.data_dir))
        self.unreadable: set[str] = set()
        self.last_lfw: float | None = None
        self.last_round = RoundStats()
        self.eval_embed: Any = None
        self.eval_cache: Any = None  # the evaluation's decoded crops, kept between epochs
        self.benchmark_sets: list[Any] | None = None  # --benchmark, read at the first epoch
        self.benchmark_caches: dict[str, Any] = {}
        self.decoded = 0  # training images this process decoded (its share on a worker)
        self.batched = 0  # images in the global batches of its rounds
        self._data_wait = 0.0
        configure_devices(config)
        if config.deterministic and (problem := configure_determinism()) is not None:
            reporter.warning(problem)
        # Multi-worker collectives are set up when the strategy is created, before any op runs.
        self.task = distribute.task_info(config.strategy)
        self.strategy = distribute.create_strategy(config.strategy)
        self.nrof_replicas = int(self.strategy.num_replicas_in_sync)
        self.objective.check_batch(config.batch_size, self.nrof_replicas)
        if self.nrof_replicas > 1 or self.task.nrof_workers > 1:
            reporter.message(
                f"{config.strategy} strategy: {self.nrof_replicas} replicas on "
                f"{self.task.nrof_workers} worker(s), "
                f"{config.batch_size // self.nrof_replicas} images per replica"
            )
        keras.utils.set_random_seed(config.seed)
        self.info = with_alignment(model_info(config), config.data_dir)
        self.graph = TrainingGraph(config, self.info, self.objective, self.strategy)
        if config.xla and not self.graph.xla:
            reporter.warning(
                "--xla: not applied (XLA compiles the triplet step of one-device runs "
                f"without --deterministic; this run: {config.loss}, {self.nrof_replicas} "
                f"replica(s), deterministic={config.deterministic})"
            )
        dirs = ckpt.open_run_dirs(config, self.task, self.info)
        self.run_name, self.log_dir, self.model_dir = dirs.name, dirs.log_dir, dirs.model_dir
        self.scratch_dir = dirs.scratch_dir
        self._opened = contextlib.ExitStack()
        try:
            if self.scratch_dir is not None:
                self._opened.callback(distribute.cleanup, self.scratch_dir)
            self.state = ckpt.TrainingState(
                self.graph.model, self.graph.ema_model, self.graph.optimizer, self.model_dir,
                config.keep_checkpoints, np.random.default_rng(config.seed),
                restore_dir=dirs.restore_dir, extras=self.objective.checkpoint_extras(),
            )  # fmt: skip
            self.resumed_from = (
                self.state.restore_latest(reporter.warning) if config.resume is not None else None
            )
            self.saved_step = self.step if self.resumed_from is not None else -1
            self.last_save = time.monotonic()
            if config.resume is not None and self.resumed_from is None:
                reporter.message(f"{self.model_dir}: no checkpoint yet; training from step 0")
            if self.resumed_from is None and config.pretrained_model is not None:
                self.load_pretrained(Path(config.pretrained_model))
            self.summaries = Summaries(self.log_dir)
            self._opened.callback(self.summaries.close)
            self.feeder = self.new_feeder()
            self._opened.callback(lambda: self.feeder.close())
        except BaseException as exc:
            self.close(exc)
            raise

    def close(self, exc: BaseException | None = None) -> None:
        """Record a failure (``exc``) in the log folder, then close what the run opened."""
        try:
            if exc is not None:
                ckpt.write_marker(self.log_dir, ckpt.FAILED, ckpt.failure_reason(exc))
        finally:
            self._opened.close()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.close(exc)

    def check_loss(self, loss: float, step: int) -> None:
        """The NaN guard: stop on a NaN or infinite loss, naming the last good checkpoint."""
        if not math.isfinite(loss):
            last = ckpt.latest_checkpoint(self.model_dir)
            kept = f"; the last good checkpoint is {last}" if last else ""
            raise TrainingDiverged(f"loss became {loss} at step {step}{kept}")

    def load_pretrained(self, path: Path) -> None:
        """Start from another model's weights (anything ``load_pretrained`` accepts)."""
        from facenet_cli.models.loading import load_pretrained

        source = load_pretrained(self.graph.model, path)
        self.graph.ema_model.set_weights(self.graph.model.get_weights())
        self.reporter.message(f"weights restored from {source}")

    @property
    def step(self) -> int:
        return self.state.current_step

    @property
    def epoch(self) -> int:
        return self.state.current_epoch

    # -- feeding ------------------------------------------------------------------------------

    def new_feeder(self) -> BatchFeeder:
        """A fresh decoding pipeline (after a decoding error the old one is done)."""
        from facenet_cli.data.pipeline import needs_fallback
        from facenet_cli.train.feeder import BatchFeeder

        config = self.config
        return BatchFeeder(
            config.image_size, random_crop=config.random_crop, random_flip=config.random_flip,
            standardization=standardization(config), random_rotate=config.random_rotate,
            random_color=config.random_color,
            fallback=needs_fallback([str(p) for c in self.classes for p in c.image_paths]),
        )  # fmt: skip

    def feed(self, batches: Sequence[Sequence[str]], rng: np.random.Generator) -> int:
        """Queue batches of paths for decoding; returns how many (take each with ``take``)."""
        return self.feeder.put_batches(batches, rng)

    def take(self) -> Any:
        """The next decoded batch (the wait is logged as the step's data wait).

        Raises:
            DecodeFailed: an image of the batch could not be decoded.
        """
        start = time.perf_counter()
        try:
            return self.feeder.get()
        finally:
            self._data_wait += time.perf_counter() - start

    def worker_batches(self, paths: list[str], unit: int) -> list[tuple[int, int, list[str]]]:
        """This process's part of each global batch of ``paths`` (see ``feeder.worker_batches``),
        counted."""
        from facenet_cli.train.feeder import worker_batches

        batches = worker_batches(self.graph, paths, self.config.batch_size, unit)
        self.decoded += sum(len(part) for _, _, part in batches)
        self.batched += len(paths)
        return batches

    def drop_unreadable(self, paths: Sequence[str]) -> None:
        """After a decoding error: find the unreadable images among ``paths``, name them and stop
        using them, and start a fresh pipeline (the old one stops at its first error)."""
        from facenet_cli.train.feeder import find_unreadable

        bad = [p for p in find_unreadable(list(paths)) if p not in self.unreadable]
        if not bad:
            raise FacenetError("an image failed to decode in a batch but every image reads alone")
        self.feeder.close()
        self.feeder = self.new_feeder()
        for path in bad:
            self.unreadable.add(path)
            self.reporter.warning(f"{path}: unreadable image, skipped from now on")
        self.objective.drop_images(set(bad))

    def current_learning_rate(self) -> float:
        config = self.config
        return learning_rate(
            self.step,
            self.epoch,
            base=config.learning_rate,
            decay_epochs=config.learning_rate_decay_epochs,
            decay_factor=config.learning_rate_decay_factor,
            epoch_size=config.epoch_size,
            schedule=self.schedule,
        )

    # -- the run ------------------------------------------------------------------------------

    def stop_step(self) -> int:
        config = self.config
        last = self.max_nrof_epochs * config.epoch_size
        return min(last, config.max_steps) if config.max_steps is not None else last

    def run(self, sigint: SigintFlag) -> str:
        """Train until the last epoch, ``max_steps``, a schedule stop or Ctrl-C."""
        config = self.config
        self.last_save = time.monotonic()
        empty_rounds = 0
        while True:
            if sigint.requested:
                return "interrupted"
            step, epoch = self.step, self.epoch
            if step >= self.stop_step():
                return "max_steps" if config.max_steps is not None and step >= config.max_steps \
                    else "max_nrof_epochs"  # fmt: skip
            if epoch >= self.max_nrof_epochs:
                return "max_nrof_epochs"
            # An epoch is over when its last step is done; evaluate and save it.
            if step >= (epoch + 1) * config.epoch_size:
                self.end_epoch()
                continue
            lr = self.current_learning_rate()
            if lr == STOP:
                return "learning-rate schedule stop"
            self.graph.set_learning_rate(lr)
            self.reporter.epoch(epoch, step - epoch * config.epoch_size)
            last = min((epoch + 1) * config.epoch_size, self.stop_step())
            trained = self.train_steps(last, lr, sigint)
            if sigint.requested:
                return "interrupted"
            if trained == 0:
                empty_rounds += 1
                if empty_rounds >= MAX_EMPTY_ROUNDS:
                    if self.step > 0:
                        self.save()  # the steps trained so far are kept
                    kept = ckpt.latest_checkpoint(self.model_dir)
                    raise FacenetError(
                        self.objective.nothing_trained(MAX_EMPTY_ROUNDS)
                        + (f"; the weights so far are in {kept}" if kept else "")
                    )
            else:
                empty_rounds = 0
            if self.checkpoint_due():
                self.save()

    def checkpoint_due(self) -> bool:
        # Workers must save at the same steps; a clock would not agree between them.
        return time.monotonic() - self.last_save > CHECKPOINT_INTERVAL_S and \
            self.task.nrof_workers == 1  # fmt: skip

    def train_steps(self, last_step: int, lr: float, sigint: SigintFlag) -> int:
        """Train on the objective's batches up to ``last_step`` at most; returns the steps
        trained. A batch with an unreadable image ends the call: the image is named and dropped,
        and the next call goes on from the step reached."""
        import tensorflow as tf

        from facenet_cli.train.feeder import DecodeFailed

        plan = self.objective.batches(self, last_step)
        pending: tuple[int, dict[str, Any], float, float, int, int | None] | None = None
        trained = trained_images = 0
        self._data_wait = 0.0
        try:
            for batch in plan:
                data_wait, self._data_wait = self._data_wait, 0.0
                step_start = time.perf_counter()
                outputs = batch.run(tf.constant(self.step, tf.int64))
                self.state.set_step(self.step + 1)
                trained += 1
                trained_images += batch.nrof_images
                # Read the previous step's results only now, so the device is never idle
                # waiting for Python between two steps.
                if pending is not None:
                    self.finish_step(*pending, lr=lr)
                pending = (self.step, outputs, step_start, data_wait, batch.nrof_images,
                           batch.triplets)  # fmt: skip
                if sigint.requested or self.checkpoint_due():
                    break
        except DecodeFailed as failed:
            self.drop_unreadable(failed.paths)
        finally:
            plan.close()
        if pending is not None:
            self.finish_step(*pending, lr=lr)
        try:
            self.feeder.discard()
        except DecodeFailed:
            # A batch queued ahead holds an unreadable image: it is found when it is trained on.
            self.feeder.close()
            self.feeder = self.new_feeder()
        self.last_round = dataclasses.replace(self.last_round, steps=trained,
                                              trained_images=trained_images)  # fmt: skip
        return trained

    def finish_step(self, step: int, outputs: dict[str, Any], step_start: float,
                    data_wait: float, nrof_images: int, triplets: int | None, *,
                    lr: float) -> None:  # fmt: skip
        values = {k: float(v.numpy()) for k, v in outputs.items()}
        duration = time.perf_counter() - step_start
        loss = values["loss"]
        self.check_loss(loss, step)
        speed = nrof_images / max(duration, 1e-9)
        tags = self.objective.STEP_TAGS
        self.summaries.scalars(
            {
                events.LOSS: loss,
                events.LEARNING_RATE: lr,
                events.TIME_STEP: duration,
                events.TIME_DATA_WAIT: data_wait,
                events.IMAGES_PER_SEC: speed,
                **{tag: values[key] for key, tag in tags.items() if key in values},
            },
            step,
        )
        self.summaries.memory(step)
        epoch = self.epoch
        self.reporter.step(
            StepReport(step=step, epoch=epoch,
                       step_in_epoch=step - epoch * self.config.epoch_size, loss=loss,
                       learning_rate=lr, triplets=triplets, images_per_sec=speed)
        )  # fmt: skip

    def end_epoch(self) -> None:
        self.state.set_epoch(self.epoch + 1)
        self.summaries.scalars({events.EPOCH: self.epoch}, self.step)
        self.reporter.epoch(self.epoch, 0)
        self.evaluate()
        self.save()

    def save(self) -> None:
        """Checkpoint at the current step, never over-writing good weights with broken ones."""
        if self.saved_step == self.step:
            return
        start = time.perf_counter()
        if not all(np.isfinite(w).all() for w in self.graph.model.get_weights()):
            last = ckpt.latest_checkpoint(self.model_dir)
            kept = f"; the last good checkpoint is {last}" if last else ""
            raise TrainingDiverged(f"weights became NaN or infinite by step {self.step}{kept}")
        # The events of every step up to the checkpoint reach the disk before the checkpoint
        # does: a run killed right after it resumes there and never writes those steps again.
        self.summaries.flush()
        self.state.save()
        self.saved_step = self.step
        self.last_save = time.monotonic()
        self.summaries.scalars({events.TIME_SAVE_VARIABLES: time.perf_counter() - start},
                               self.step)  # fmt: skip
        self.summaries.flush()

    # -- evaluation and export ----------------------------------------------------------------

    def evaluate(self) -> None:
        """The pairs (the moving-average model, inference mode, centre crops), then the
        objective's own evaluation; on the chief only."""
        if not self.task.is_chief:
            return
        self.evaluate_pairs()
        self.evaluate_benchmarks()
        self.objective.evaluate(self, final=self.epoch >= self.max_nrof_epochs)

    def evaluation_embedding(self) -> Any:
        """The moving-average model's embedding of raw pixels (made once)."""
        if self.eval_embed is None:
            from facenet_cli.models.loading import embedding_fn

            self.eval_embed = embedding_fn(self.graph.ema_model, self.info,
                                           batch_size=self.config.lfw_batch_size,
                                           xla=self.graph.xla)  # fmt: skip
        return self.eval_embed

    def evaluate_pairs(self) -> None:
        config = self.config
        if config.lfw_dir is None or config.lfw_pairs is None:
            return
        from facenet_cli.data.pairs_file import protocol_folds
        from facenet_cli.evaluate.pairs_embedding import CropCache, evaluate_on_pairs
        from facenet_cli.evaluate.record import record_threshold
        from facenet_cli.train.summaries import report_metrics

        if self.eval_cache is None:
            self.eval_cache = CropCache()
        start = time.perf_counter()
        report = evaluate_on_pairs(
            self.evaluation_embedding(),
            config.lfw_dir,
            config.lfw_pairs,
            image_size=config.image_size,
            batch_size=config.lfw_batch_size,
            use_flipped_images=config.lfw_use_flipped_images,
            distance_metric=config.lfw_distance_metric,
            subtract_mean=config.lfw_subtract_mean,
            nrof_folds=protocol_folds(config.lfw_nrof_folds, config.lfw_pairs),
            cache=self.eval_cache,
        )
        elapsed = time.perf_counter() - start
        self.info = record_threshold(self.model_dir, self.info, report,
                                     subtract_mean=config.lfw_subtract_mean)  # fmt: skip
        metrics = report_metrics(report)
        metrics[events.TIME_LFW] = elapsed
        self.summaries.scalars(metrics, self.step)
        self.last_lfw = metrics.get(events.LFW_ACCURACY)
        self.reporter.evaluation(self.epoch, self.step, metrics)

    def evaluate_benchmarks(self) -> None:
        """``--benchmark``: each set through the same protocol as ``facenet validate
        --benchmark``, written as ``benchmark/<figure>/<name>`` events (decoded crops kept)."""
        config = self.config
        if not config.benchmark:
            return
        from facenet_cli.evaluate.benchmarks import benchmark_scalars, evaluate_benchmarks
        from facenet_cli.evaluate.pairs_embedding import CropCache
        from facenet_cli.train.settings import benchmark_sets

        if self.benchmark_sets is None:
            self.benchmark_sets = benchmark_sets(config)
            self.benchmark_caches = {s.name: CropCache() for s in self.benchmark_sets}
        reports = evaluate_benchmarks(
            self.evaluation_embedding(), self.benchmark_sets, image_size=config.image_size,
            batch_size=config.lfw_batch_size, use_flipped_images=config.lfw_use_flipped_images,
            distance_metric=config.lfw_distance_metric, subtract_mean=config.lfw_subtract_mean,
            caches=self.benchmark_caches,
        )  # fmt: skip
        self.summaries.scalars(benchmark_scalars(reports), self.step)
        for b in reports:
            r = b.report.result
            self.reporter.message(
                f"epoch {self.epoch} {b.name}: accuracy {r.accuracy_mean:.4f} +- "
                f"{r.accuracy_std:.4f}, AUC {r.auc:.4f}, EER {r.eer:.4f} on {r.nrof_pairs} pairs"
            )

    def export(self) -> Path | None:
        from facenet_cli.models.export import export_model

        if not self.task.is_chief:
            return None
        out = self.model_dir / "export"
        model = self.graph.ema_model
        if self.graph.mixed_precision or self.graph.distributed:
            # Exported models compute in float32 (the moving averages are float32 already) and
            # hold plain variables, not a strategy's distributed ones.
            from facenet_cli.models.loading import build_model

            model = build_model(self.info)
            model.set_weights(self.graph.ema_model.get_weights())
        return Path(export_model(model, self.info, out))
