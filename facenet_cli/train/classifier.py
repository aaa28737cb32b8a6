"""Classifier training: ``facenet train --loss softmax|arcface|cosface``.

The original's ``train_softmax.py`` recipe: the embedding model's prelogits feed a logits layer
over the training identities (a plain dense layer for ``softmax``, normalised weights with an
additive margin for ``arcface`` / ``cosface``, see ``margin.py``); the loss is softmax
cross-entropy plus, optionally, center loss on the prelogits, a penalty on the prelogits' norm
and weight decay. Epochs are ``epoch_size`` batches of the shuffled image list (see
``classifier_data.py``); there are no selection rounds. Everything else (run directory,
checkpoints with exact resume, Ctrl-C save, NaN guard, event files, LFW evaluation after each
epoch, distribution strategies, mixed precision, export) is the triplet trainer's: the classes
here override only its loss-specific parts. The logits layer and the centers are checkpointed
but never exported: the exported model maps images to the embedding only.
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig
from facenet_cli.data.dataset import ImageClass
from facenet_cli.errors import InputError
from facenet_cli.train.classifier_data import (
    batch_rows,
    filter_dataset,
    labelled_images,
    read_filter_file,
    split_dataset,
)
from facenet_cli.train.graph import TrainingGraph
from facenet_cli.train.loop import CHECKPOINT_INTERVAL_S, RoundStats, Trainer
from facenet_cli.train.settings import standardization

if TYPE_CHECKING:
    from facenet_cli.train.run import SigintFlag

# Batches queued ahead of the step that trains on them.
PREFETCH_BATCHES = 4
PRELOGITS_HIST_BINS = 1000
PRELOGITS_HIST_NAME = "prelogits_hist.npy"


def check_classifier_config(config: TrainConfig) -> None:
    """Reject classifier settings out of range (before any data is read).

    Raises:
        InputError: the option and its allowed range.
    """
    checks = [
        (0.0 <= config.center_loss_alfa <= 1.0, "--center-loss-alfa must be in [0, 1]"),
        (config.center_loss_factor >= 0.0, "--center-loss-factor must be >= 0"),
        (config.prelogits_norm_loss_factor >= 0.0, "--prelogits-norm-loss-factor must be >= 0"),
        (config.prelogits_norm_p > 0.0, "--prelogits-norm-p must be > 0"),
        (0.0 <= config.validation_set_split_ratio < 1.0,
         "--validation-set-split-ratio must be in [0, 1)"),
        (config.validate_every_n_epochs >= 1, "--validate-every-n-epochs must be >= 1"),
        (0.0 <= config.filter_percentile <= 100.0, "--filter-percentile must be in [0, 100]"),
        (config.prelogits_hist_max > 0.0, "--prelogits-hist-max must be > 0"),
        (config.margin_scale is None or config.margin_scale > 0.0, "--margin-scale must be > 0"),
        (config.margin is None or 0.0 <= config.margin < math.pi / 2,
         "--margin must be in [0, pi/2)"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise InputError(message)
    if config.filter_filename is not None and not Path(config.filter_filename).is_file():
        raise InputError(f"{config.filter_filename}: filter file not found (--filter-filename)")


class ClassifierGraph(TrainingGraph):
    """The triplet graph's model, moving average and optimizer, with a classifier step.

    Adds the logits layer (``ClassifierHead``) and, with ``--center-loss-factor``, the class
    centers. Under a distribution strategy each replica's losses are its rows' share of the
    global batch's means, and the centers move with the all-gathered prelogits of the whole
    batch, so the update is the one-device update.
    """

    def __init__(self, config: TrainConfig, info: Any, strategy: Any, nrof_classes: int) -> None:
        self.nrof_classes = nrof_classes
        super().__init__(config, info, strategy)
        self.xla = False  # the classifier step is not compiled with XLA (the run says so)

    def _build(self, config: TrainConfig, policy: str | None) -> tuple[Any, Any, Any]:
        from facenet_cli.train.center_loss import CenterLoss
        from facenet_cli.train.margin import ClassifierHead

        self.head = ClassifierHead(
            self.nrof_classes, config.loss, scale=config.margin_scale, margin=config.margin,
            easy_margin=config.easy_margin, weight_decay=config.weight_decay, name="Logits",
        )  # fmt: skip
        self.head.build((None, config.embedding_size))
        self.center: CenterLoss | None = None
        if config.center_loss_factor > 0.0:
            self.center = CenterLoss(self.nrof_classes, config.center_loss_alfa, name="centers")
            self.center.build((None, config.embedding_size))
        return super()._build(config, policy)

    def head_variables(self) -> list[Any]:
        return list(self.head.trainable_variables)

    def checkpoint_extras(self) -> dict[str, Any]:
        extras: dict[str, Any] = {"logits": self.head}
        if self.center is not None:
            extras["centers"] = self.center
        return extras

    def _compile(self, config: TrainConfig) -> tuple[Any, Any, Any]:
        import tensorflow as tf

        from facenet_cli.train.margin import classifier_accuracy, prelogits_norm

        model, head, center, optimizer = self.model, self.head, self.center, self.optimizer
        trainable = self.trained_variables()
        nrof_replicas = self.nrof_replicas
        loss_scaling = self.loss_scaling
        distributed = self.distributed
        center_factor = float(config.center_loss_factor)
        norm_factor = float(config.prelogits_norm_loss_factor)
        norm_p = float(config.prelogits_norm_p)
        update_average = self.average_updater(float(config.moving_average_decay))
        spec = tf.TensorSpec((None, config.image_size, config.image_size, 3), tf.float32)
        label_spec = tf.TensorSpec((None,), tf.int32)
        step_spec = tf.TensorSpec((), tf.int64)

        def losses(images: tf.Tensor, labels: tf.Tensor, global_batch: tf.Tensor,
                   training: bool) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:  # fmt: skip
            """This replica's share of the global batch's mean losses (and sums to report)."""
            share = tf.cast(tf.shape(labels)[0], tf.float32) / global_batch
            prelogits = tf.cast(model(images, training=training), tf.float32)
            logits = head(prelogits, labels)
            cross_entropy = share * tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            )
            norm = share * prelogits_norm(prelogits, norm_p)
            total = cross_entropy + norm_factor * norm
            out = {
                "cross_entropy": cross_entropy,
                "accuracy": share * classifier_accuracy(logits, labels),
                "prelogits_norm": norm,
            }
            if center is not None:
                center_loss = share * center.distance(prelogits, labels)
                total += center_factor * center_loss
                out["center_loss"] = center_loss
                if training:
                    moved, moved_labels = prelogits, labels
                    if distributed:
                        context = tf.distribute.get_replica_context()
                        moved = context.all_gather(prelogits, axis=0)
                        moved_labels = context.all_gather(labels, axis=0)
                    center.move_centers(moved, moved_labels)
            regularisation = [tf.cast(x, tf.float32) for x in (*model.losses, *head.losses)]
            if regularisation:
                # Every replica holds the same weights: 1/R of the decay each.
                out["regularization"] = tf.add_n(regularisation) / nrof_replicas
                total += out["regularization"]
            out["loss"] = total
            return total, out

        def replica_step(images: tf.Tensor, labels: tf.Tensor,
                         global_batch: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            with tf.GradientTape() as tape:
                total, out = losses(images, labels, global_batch, training=True)
                scaled = optimizer.scale_loss(total) if loss_scaling else total
            grads = tape.gradient(scaled, trainable)
            optimizer.apply_gradients(zip(grads, trainable, strict=True))
            return out

        def finish(out: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            if self.mixed_precision:
                scale = optimizer.scale_loss(1.0) if loss_scaling else 1.0
                out = {**out, "loss_scale": tf.cast(scale, tf.float32)}
            return out

        @tf.function(input_signature=[spec, label_spec], autograph=False)
        def validate(images: tf.Tensor, labels: tf.Tensor) -> dict[str, tf.Tensor]:
            # Summed over the batch; the trained weights in inference mode.
            prelogits = tf.cast(model(images, training=False), tf.float32)
            logits = head(prelogits, labels)
            n = tf.cast(tf.shape(labels)[0], tf.float32)
            return {
                "loss": tf.reduce_sum(
                    tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
                ),
                "accuracy": n * classifier_accuracy(logits, labels),
                "prelogits": prelogits,
            }

        self.validate = validate
        if not distributed:

            @tf.function(input_signature=[spec, label_spec, step_spec], autograph=False)
            def train_step(images: tf.Tensor, labels: tf.Tensor,
                           step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
                global_batch = tf.cast(tf.shape(labels)[0], tf.float32)
                out = replica_step(images, labels, global_batch)
                update_average(step)
                return finish(out)

            # No selection embedding and no cached rows: batches come from the image list.
            return None, train_step, None

        from facenet_cli.train import distribute

        sum_op = tf.distribute.ReduceOp.SUM
        strategy = self.strategy

        @tf.function(reduce_retracing=True, autograph=False)
        def step_replicas(images: Any, labels: Any, global_batch: tf.Tensor,
                          step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            per_replica = strategy.run(replica_step, args=(images, labels, global_batch))
            sums = {k: strategy.reduce(sum_op, v, axis=None) for k, v in per_replica.items()}
            update_average(step)
            return finish(sums)

        def train_distributed(images: tf.Tensor, labels: tf.Tensor,
                              step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            bounds = distribute.split_bounds(int(images.shape[0]), nrof_replicas)
            global_batch = tf.constant(float(images.shape[0]), tf.float32)
            return step_replicas(self._distribute(images, bounds),
                                 self._distribute(labels, bounds), global_batch, step)  # fmt: skip

        return None, train_distributed, None


class ClassifierTrainer(Trainer):
    """The triplet trainer's run, with classifier epochs instead of selection rounds."""

    STEP_TAGS = {
        "cross_entropy": events.CLS_CROSS_ENTROPY,
        "center_loss": events.CLS_CENTER_LOSS,
        "regularization": events.CLS_REGULARIZATION,
        "accuracy": events.CLS_ACCURACY,
        "prelogits_norm": events.CLS_PRELOGITS_NORM,
        "loss_scale": events.LOSS_SCALE,
    }

    def load_classes(self) -> list[ImageClass]:
        from facenet_cli.train.settings import read_classes

        config = self.config
        classes = read_classes(config, self.reporter)
        if config.filter_filename is not None:
            classes = filter_dataset(
                classes, read_filter_file(Path(config.filter_filename)),
                config.filter_percentile, config.filter_min_nrof_images_per_class,
            )  # fmt: skip
        self.validation_classes: list[ImageClass] = []
        if config.validation_set_split_ratio > 0.0:
            rng = np.random.default_rng(config.seed)
            classes, self.validation_classes = split_dataset(
                classes, config.validation_set_split_ratio,
                config.min_nrof_val_images_per_class, rng,
            )  # fmt: skip
        if len(classes) < 2:
            raise InputError(
                f"{config.data_dir}: {len(classes)} classes left to train a classifier on "
                "(at least 2 are needed; check the filter and validation options)"
            )
        self.paths, self.labels = labelled_images(classes)
        self.pending: deque[tuple[int, np.ndarray]] = deque()
        self.prelogits_hist: list[np.ndarray] = []
        return classes

    def make_graph(self) -> TrainingGraph:
        return ClassifierGraph(self.config, self.info, self.strategy, len(self.classes))

    def check_batch(self) -> None:
        if self.config.batch_size % self.nrof_replicas != 0:
            raise InputError(
                f"--batch-size {self.config.batch_size} does not divide into {self.nrof_replicas}"
                " replicas"
            )

    def _queue_until(self, last_step: int) -> None:
        """Queue the batches of the steps after the last queued one, up to ``last_step``."""
        config = self.config
        next_step = self.pending[-1][0] + 1 if self.pending else self.step
        while next_step < last_step and len(self.pending) < PREFETCH_BATCHES:
            rows = batch_rows(next_step, config.batch_size, len(self.paths), config.seed)
            augment = np.random.default_rng([config.seed, next_step, 1])
            self.feeder.put([self.paths[i] for i in rows], config.batch_size, augment)
            self.pending.append((next_step, self.labels[rows]))
            next_step += 1

    def train_round(self, lr: float, sigint: SigintFlag) -> int:
        """Train up to the end of the epoch (or the stop step); returns the steps trained."""
        import tensorflow as tf

        config = self.config
        last = min((self.epoch + 1) * config.epoch_size, self.stop_step())
        pending_result: tuple[int, dict[str, Any], float, float, int] | None = None
        trained = 0
        start = time.perf_counter()
        while self.step < last and not sigint.requested:
            self._queue_until(last)
            wait_start = time.perf_counter()
            step, labels = self.pending.popleft()
            assert step == self.step
            images = self.feeder.get()
            data_wait = time.perf_counter() - wait_start
            self._queue_until(last)
            step_start = time.perf_counter()
            outputs = self.graph.train_step(images, tf.constant(labels),
                                            tf.constant(self.step, tf.int64))  # fmt: skip
            self.state.set_step(self.step + 1)
            trained += 1
            # The previous step's results are read only now (the triplet loop's rule).
            if pending_result is not None:
                self.finish_step(*pending_result, lr=lr, triplets=None)
            pending_result = (self.step, outputs, step_start, data_wait, len(labels))
            if time.monotonic() - self.last_save > CHECKPOINT_INTERVAL_S and \
                    self.task.nrof_workers == 1:  # fmt: skip
                break  # the loop saves, then calls again
        if pending_result is not None:
            self.finish_step(*pending_result, lr=lr, triplets=None)
        self.feeder.discard()
        self.pending.clear()
        self.last_round = RoundStats(0, 0, 0, trained, trained * config.batch_size,
                                     time.perf_counter() - start)  # fmt: skip
        return trained

    def evaluate(self) -> None:
        """LFW pairs (as the triplet trainer), then the held-out images every n epochs."""
        super().evaluate()
        config = self.config
        epoch = self.epoch  # already counts the epoch just finished
        due = epoch % config.validate_every_n_epochs == 0 or epoch >= self.max_nrof_epochs
        if self.validation_classes and due and self.task.is_chief:
            self.run_validation()

    def run_validation(self) -> None:
        """Loss and accuracy on the validation images (centre crops, inference mode)."""
        import tensorflow as tf

        from facenet_cli.data.pipeline import image_dataset

        config = self.config
        names = {c.name: i for i, c in enumerate(self.classes)}
        paths = [str(p) for c in self.validation_classes for p in c.image_paths]
        labels = [names[c.name] for c in self.validation_classes for _ in c.image_paths]
        start = time.perf_counter()
        dataset = image_dataset(paths, labels, image_size=config.image_size,
                                batch_size=config.lfw_batch_size,
                                standardization=standardization(config))  # fmt: skip
        loss = correct = 0.0
        norms = []
        for images, batch_labels in dataset:
            assert isinstance(self.graph, ClassifierGraph)
            out = self.graph.validate(images, tf.cast(batch_labels, tf.int32))
            loss += float(out["loss"])
            correct += float(out["accuracy"])
            norms.append(np.abs(out["prelogits"].numpy()))
        metrics = {events.VAL_LOSS: loss / len(paths), events.VAL_ACCURACY: correct / len(paths)}
        self.summaries.scalars(metrics, self.step)
        self.reporter.evaluation(self.epoch, self.step, metrics)
        # The original's prelogits histogram: |prelogits| clipped to prelogits_hist_max.
        clipped = np.minimum(np.concatenate(norms).ravel(), config.prelogits_hist_max)
        hist, _ = np.histogram(clipped, bins=PRELOGITS_HIST_BINS,
                               range=(0.0, config.prelogits_hist_max))  # fmt: skip
        self.prelogits_hist.append(hist.astype(np.int64))
        np.save(self.model_dir / PRELOGITS_HIST_NAME, np.stack(self.prelogits_hist))
        self.reporter.message(
            f"validation: loss {metrics[events.VAL_LOSS]:.3f}, accuracy "
            f"{metrics[events.VAL_ACCURACY]:.3f} on {len(paths)} images "
            f"({time.perf_counter() - start:.1f} s)"
        )
