"""The triplet-loss training loop with online selection, full-state checkpoints and summaries.

One selection round: sample people, embed their images, select triplets, train on the triplets
(batches of rows a, p, n, a, p, n, ...). Epochs are exactly ``epoch_size`` steps (the last round
of an epoch is cut there), so a global step always says where a run is, and a checkpoint taken
at any step resumes it. After each epoch the moving-average model is evaluated on the pairs
through the same code as ``facenet validate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig
from facenet_cli.errors import FacenetError, InputError, TrainingDiverged
from facenet_cli.train import checkpoints as ckpt
from facenet_cli.train.reporting import Reporter, StepReport
from facenet_cli.train.schedule import STOP, learning_rate, read_schedule_file
from facenet_cli.train.settings import (
    load_training_classes,
    model_info,
    standardization,
)
from facenet_cli.train.triplets import sample_people, select_triplets

if TYPE_CHECKING:
    from facenet_cli.data.dataset import ImageClass
    from facenet_cli.train.graph import TrainingGraph
    from facenet_cli.train.run import SigintFlag

# Consecutive selection rounds without a single triplet before the run gives up.
MAX_EMPTY_ROUNDS = 100
# A checkpoint is also written mid-epoch when this long has passed since the last one.
CHECKPOINT_INTERVAL_S = 600.0


@dataclass(frozen=True)
class RoundStats:
    """What one selection round did (for summaries and the pipeline benchmark)."""

    embedded: int
    triplets: int
    pairs: int
    steps: int
    trained_images: int
    selection_s: float


# ------------------------------------------------------------------------------------ the loop


class Trainer:
    """State and steps of one run; ``run_train`` drives it.

    Everything is set up here; a failure after the run's folders exist is recorded in its log
    folder (a FAILED marker) and what was opened is closed. ``close`` (or leaving the ``with``
    block) ends the run the same way.
    """

    # The step's own outputs and the tags they are logged under (besides loss and timings).
    STEP_TAGS: dict[str, str] = {
        "active_fraction": events.TRIPLETS_ACTIVE_FRACTION,
        "pos_dist": events.TRIPLETS_POS_DIST,
        "neg_dist": events.TRIPLETS_NEG_DIST,
        "loss_scale": events.LOSS_SCALE,
    }

    def __init__(self, config: TrainConfig, reporter: Reporter) -> None:
        import keras

        from facenet_cli.train import distribute
        from facenet_cli.train.graph import configure_determinism, configure_devices
        from facenet_cli.train.settings import with_alignment
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
        self.classes = self.load_classes()
        self.class_paths = [[str(p) for p in c.image_paths] for c in self.classes]
        self.unreadable: set[str] = set()
        self.last_lfw: float | None = None
        self.last_round: RoundStats | None = None
        self.eval_embed: Any = None
        self.eval_cache: Any = None  # the evaluation's decoded crops, kept between epochs
        self.decoded = 0  # training images this process decoded (its share on a worker)
        self.batched = 0  # images in the global batches of its rounds
        configure_devices(config)
        if config.deterministic and (problem := configure_determinism()) is not None:
            reporter.warning(problem)
        # Multi-worker collectives are set up when the strategy is created, before any op runs.
        self.task = distribute.task_info(config.strategy)
        self.strategy = distribute.create_strategy(config.strategy)
        self.nrof_replicas = int(self.strategy.num_replicas_in_sync)
        self.check_batch()
        if self.nrof_replicas > 1 or self.task.nrof_workers > 1:
            reporter.message(
                f"{config.strategy} strategy: {self.nrof_replicas} replicas on "
                f"{self.task.nrof_workers} worker(s), "
                f"{config.batch_size // self.nrof_replicas} images per replica"
            )
        keras.utils.set_random_seed(config.seed)
        self.info = with_alignment(model_info(config), config.data_dir)
        self.graph = self.make_graph()
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
                restore_dir=dirs.restore_dir, extras=self.graph.checkpoint_extras(),
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

    # -- what the loss decides (the classifier trainer overrides these) ----------------------

    def load_classes(self) -> list[ImageClass]:
        """The training classes (``self.config`` is set, nothing else yet)."""
        return load_training_classes(self.config, self.reporter)

    def make_graph(self) -> TrainingGraph:
        """The model, its moving average, the optimizer and the compiled steps."""
        from facenet_cli.train.graph import TrainingGraph

        return TrainingGraph(self.config, self.info, self.strategy)

    def check_batch(self) -> None:
        """Reject a global batch that cannot be split between the replicas."""
        from facenet_cli.train import distribute

        distribute.check_global_batch(self.config.batch_size, self.nrof_replicas)

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

    # -- one selection round ------------------------------------------------------------------

    def sample_round(self) -> tuple[list[str], np.ndarray]:
        """Sample people (skipping unreadable images); returns paths and images per class."""
        config = self.config
        sizes = [len(p) for p in self.class_paths]
        cls, img, per_class = sample_people(
            sizes, config.people_per_batch, config.images_per_person, self.state.rng
        )
        paths = [self.class_paths[c][i] for c, i in zip(cls.tolist(), img.tolist(), strict=True)]
        return paths, per_class

    def new_feeder(self) -> Any:
        """A fresh decoding pipeline (after a decode error the old one is done)."""
        from facenet_cli.data.pipeline import needs_fallback
        from facenet_cli.train.feeder import BatchFeeder

        config = self.config
        return BatchFeeder(
            config.image_size, random_crop=config.random_crop, random_flip=config.random_flip,
            standardization=standardization(config), random_rotate=config.random_rotate,
            random_color=config.random_color,
            fallback=needs_fallback([p for paths in self.class_paths for p in paths]),
        )  # fmt: skip

    def embed_round(self, paths: list[str]) -> tuple[np.ndarray, Any] | None:
        """Embeddings of the sampled images, and the decoded images when they can be reused.

        Without random crop or flip a triplet row is exactly the image embedded for selection,
        so the round's images are decoded once and kept on the device (the original decoded
        every row again: each image appears in dozens of triplets). Returns None when an
        unreadable image was found (it is dropped and the round resampled).
        """
        import tensorflow as tf

        batches = self.worker_batches(paths, unit=1)
        self.feeder.put_batches([part for _, _, part in batches], self.state.rng)
        if self.graph.decodes_share:
            from facenet_cli.train.feeder import embed_share

            # A worker that decodes only its share cannot keep the whole round for training.
            embeddings, failed = embed_share(self.feeder, self.graph, batches,
                                             self.config.image_size)  # fmt: skip
            # All workers must decide alike, or one would wait for the others in a collective:
            # a decoding error on any worker makes every worker look for the unreadable files.
            if self.graph.any_worker(failed):
                self._drop_unreadable(paths)
                return None
            return embeddings, None
        config = self.config
        reuse = not (config.random_crop or config.random_flip or config.random_rotate
                     or config.random_color)  # fmt: skip
        parts = []
        kept = []
        try:
            for _ in batches:
                batch = self.feeder.get()
                if reuse:
                    with tf.device(self.graph.device):
                        batch = tf.identity(batch)
                    kept.append(batch)
                parts.append(self.graph.embed(batch))
            embeddings = np.concatenate([p.numpy() for p in parts], axis=0)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            self._drop_unreadable(paths)
            return None
        cache = None
        if reuse:
            with tf.device(self.graph.device):
                cache = tf.concat(kept, axis=0)
        return embeddings, cache

    def _drop_unreadable(self, paths: list[str]) -> None:
        """After a decoding error: drop the unreadable images (the round is then resampled)."""
        from facenet_cli.train.feeder import find_unreadable

        bad = find_unreadable(paths)
        if not bad:
            raise FacenetError("an image failed to decode in a round but every image reads alone")
        # The pipeline stops at its first error: start a fresh one.
        self.feeder.close()
        self.feeder = self.new_feeder()
        self._drop_images(bad)

    def worker_batches(self, paths: list[str], unit: int) -> list[tuple[int, int, list[str]]]:
        """This process's part of each global batch of ``paths`` (see ``feeder.worker_batches``),
        counted."""
        from facenet_cli.train.feeder import worker_batches

        batches = worker_batches(self.graph, paths, self.config.batch_size, unit)
        self.decoded += sum(len(part) for _, _, part in batches)
        self.batched += len(paths)
        return batches

    def _drop_images(self, bad: list[str]) -> None:
        for path in bad:
            if path not in self.unreadable:
                self.unreadable.add(path)
                self.reporter.warning(f"{path}: unreadable image, skipped from now on")
        self.class_paths = [[p for p in paths if p not in self.unreadable]
                            for paths in self.class_paths]  # fmt: skip
        self.class_paths = [p for p in self.class_paths if len(p) >= 2]
        if len(self.class_paths) < self.config.people_per_batch:
            raise InputError(
                f"{self.config.data_dir}: too few readable classes left "
                f"({len(self.class_paths)}) for --people-per-batch "
                f"{self.config.people_per_batch}"
            )

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
            trained = self.train_round(lr, sigint)
            if sigint.requested:
                return "interrupted"
            if trained == 0:
                empty_rounds += 1
                if empty_rounds >= MAX_EMPTY_ROUNDS:
                    if self.step > 0:
                        self.save()  # the steps trained so far are kept
                    kept = ckpt.latest_checkpoint(self.model_dir)
                    raise FacenetError(
                        f"no triplets in {MAX_EMPTY_ROUNDS} selection rounds in a row: "
                        "every negative is beyond the margin (try a larger --alpha)"
                        + (f"; the weights so far are in {kept}" if kept else "")
                    )
            else:
                empty_rounds = 0
            # Workers must save at the same steps; a clock would not agree between them.
            if time.monotonic() - self.last_save > CHECKPOINT_INTERVAL_S and \
                    self.task.nrof_workers == 1:  # fmt: skip
                self.save()

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

    def train_round(self, lr: float, sigint: SigintFlag) -> int:
        """One selection round; returns the number of steps trained."""
        import tensorflow as tf

        config = self.config
        round_start = time.perf_counter()
        paths, per_class = self.sample_round()
        embedded = self.embed_round(paths)
        if embedded is None:
            return 0  # unreadable images were dropped; the next round resamples
        embeddings, cache = embedded
        triplets, nrof_pairs = select_triplets(
            embeddings, per_class, config.people_per_batch, config.alpha,
            config.triplet_selection, self.state.rng,
        )  # fmt: skip
        selection_time = time.perf_counter() - round_start
        first_step = self.step + 1
        self.summaries.scalars(
            {
                events.TRIPLETS_SELECTED: len(triplets),
                events.TRIPLETS_PAIRS: nrof_pairs,
                events.TIME_SELECTION: selection_time,
            },
            first_step,
        )
        self.last_round = RoundStats(len(paths), len(triplets), nrof_pairs, 0, 0, selection_time)
        if len(triplets) == 0:
            self.reporter.message(
                f"step {self.step}: no triplets among {nrof_pairs} pairs; sampling again"
            )
            return 0
        epoch = self.epoch
        epoch_end = (epoch + 1) * config.epoch_size
        room = min(epoch_end, self.stop_step()) - self.step
        nrof_batches = min(math.ceil(3 * len(triplets) / config.batch_size), room)
        rows = triplets[: nrof_batches * config.batch_size // 3].reshape(-1)
        if cache is None:
            batches = self.worker_batches([paths[i] for i in rows], unit=3)
            nrof_batches = self.feeder.put_batches([part for _, _, part in batches],
                                                   self.state.rng)  # fmt: skip
        pending: tuple[int, dict[str, Any], float, float, int] | None = None
        trained = 0
        trained_images = 0
        for batch in range(nrof_batches):
            wait_start = time.perf_counter()
            if cache is None:
                images = self.feeder.get()
                nrof_images, offset, _ = batches[batch]
            else:
                batch_rows = rows[batch * config.batch_size : (batch + 1) * config.batch_size]
                nrof_images = len(batch_rows)
            data_wait = time.perf_counter() - wait_start
            step_start = time.perf_counter()
            step_tensor = tf.constant(self.step, tf.int64)
            if cache is None and self.graph.decodes_share:
                outputs = self.graph.train_step(images, step_tensor, nrof_images, offset)
            elif cache is None:
                outputs = self.graph.train_step(images, step_tensor)
            else:
                outputs = self.graph.train_rows(cache, tf.constant(batch_rows), step_tensor)
            self.state.set_step(self.step + 1)
            trained += 1
            trained_images += nrof_images
            # Read the previous step's results only now, so the device is never idle waiting
            # for Python between two steps.
            if pending is not None:
                self.finish_step(*pending, lr=lr, triplets=len(triplets))
            pending = (self.step, outputs, step_start, data_wait, nrof_images)
            if sigint.requested:
                break
        if pending is not None:
            self.finish_step(*pending, lr=lr, triplets=len(triplets))
        self.feeder.discard()
        self.last_round = dataclasses.replace(
            self.last_round, steps=trained, trained_images=trained_images
        )
        return trained

    def finish_step(self, step: int, outputs: dict[str, Any], step_start: float,
                    data_wait: float, nrof_images: int, *, lr: float,
                    triplets: int | None) -> None:  # fmt: skip
        values = {k: float(v.numpy()) for k, v in outputs.items()}
        duration = time.perf_counter() - step_start
        loss = values["loss"]
        self.check_loss(loss, step)
        speed = nrof_images / max(duration, 1e-9)
        self.summaries.scalars(
            {
                events.LOSS: loss,
                events.LEARNING_RATE: lr,
                events.TIME_STEP: duration,
                events.TIME_DATA_WAIT: data_wait,
                events.IMAGES_PER_SEC: speed,
                **{tag: values[key] for key, tag in self.STEP_TAGS.items() if key in values},
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

    # -- evaluation and export ----------------------------------------------------------------

    def evaluate(self) -> None:
        """Evaluate the moving-average model on the pairs (inference mode, centre crops)."""
        config = self.config
        if config.lfw_dir is None or config.lfw_pairs is None or not self.task.is_chief:
            return
        from facenet_cli.data.pairs_file import protocol_folds
        from facenet_cli.evaluate.record import record_threshold
        from facenet_cli.evaluate.validate import CropCache, evaluate_on_pairs
        from facenet_cli.models.loading import embedding_fn
        from facenet_cli.train.summaries import report_metrics

        if self.eval_embed is None:
            self.eval_embed = embedding_fn(self.graph.ema_model, self.info,
                                           batch_size=config.lfw_batch_size,
                                           xla=self.graph.xla)  # fmt: skip
            self.eval_cache = CropCache()
        start = time.perf_counter()
        report = evaluate_on_pairs(
            self.eval_embed,
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
