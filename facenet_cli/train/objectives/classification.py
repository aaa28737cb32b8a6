"""The classification objective: ``facenet train --loss softmax|arcface|cosface``.

The original's ``train_softmax.py`` recipe: the embedding model's prelogits feed a head over the
training identities (``facenet_cli.train.heads``: a plain dense layer for ``softmax``,
normalised weights with an additive margin for ``arcface`` / ``cosface``); the loss is softmax
cross-entropy plus, optionally, center loss on the prelogits, a penalty on the prelogits' norm
and weight decay. Batches come from one endless shuffled stream of the training images
(``classifier_data.py``); there are no selection rounds. The head and the centers are
checkpointed but never exported: the exported model maps images to the embedding only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig
from facenet_cli.errors import InputError
from facenet_cli.train.classifier_data import (
    batch_rows,
    filter_dataset,
    labelled_images,
    read_filter_file,
    split_dataset,
)
from facenet_cli.train.objective import Batch, DataSummary, Objective, RoundStats, TrainingRun
from facenet_cli.train.settings import left_out_files, read_classes, standardization

if TYPE_CHECKING:
    from facenet_cli.data.dataset import ImageClass
    from facenet_cli.train.graph import TrainingGraph

# Batches queued ahead of the step that trains on them.
PREFETCH_BATCHES = 4
PRELOGITS_HIST_BINS = 1000
PRELOGITS_HIST_NAME = "prelogits_hist.npy"


def classifier_accuracy(logits: Any, labels: Any) -> Any:
    """Share of rows whose largest logit is the true class."""
    import tensorflow as tf

    predicted = tf.argmax(logits, axis=1, output_type=labels.dtype)
    return tf.reduce_mean(tf.cast(tf.equal(predicted, labels), tf.float32))


def prelogits_norm(prelogits: Any, p: float) -> Any:
    """The original's ``mean(|prelogits + 1e-4|_p)`` over the batch (its norm penalty)."""
    import tensorflow as tf

    return tf.reduce_mean(tf.norm(tf.abs(prelogits) + 1e-4, ord=p, axis=1))


class ClassificationObjective(Objective):
    """A head over the training identities, trained with softmax cross-entropy.

    Under a distribution strategy each replica's losses are its rows' share of the global
    batch's means, and the centers move with the all-gathered prelogits of the whole batch, so
    the update is the one-device update.
    """

    NAME = "classification"
    STEP_TAGS = {
        "cross_entropy": events.CLS_CROSS_ENTROPY,
        "center_loss": events.CLS_CENTER_LOSS,
        "regularization": events.CLS_REGULARIZATION,
        "accuracy": events.CLS_ACCURACY,
        "prelogits_norm": events.CLS_PRELOGITS_NORM,
        "loss_scale": events.LOSS_SCALE,
    }

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        if config.filter_filename is not None and not Path(config.filter_filename).is_file():
            raise InputError(f"{config.filter_filename}: filter file not found (--filter-filename)")

    def load_classes(self) -> list[ImageClass]:
        config = self.config
        classes = read_classes(config, self.reporter)
        notes = left_out_files(classes)
        if config.filter_filename is not None:
            before = sum(len(c) for c in classes)
            classes = filter_dataset(
                classes, read_filter_file(Path(config.filter_filename)),
                config.filter_percentile, config.filter_min_nrof_images_per_class,
            )  # fmt: skip
            notes.append(f"{before - sum(len(c) for c in classes)} images filtered out "
                         f"(--filter-filename)")  # fmt: skip
        self.validation_classes: list[ImageClass] = []
        if config.validation_set_split_ratio > 0.0:
            rng = np.random.default_rng(config.seed)
            classes, self.validation_classes = split_dataset(
                classes, config.validation_set_split_ratio,
                config.min_nrof_val_images_per_class, rng,
            )  # fmt: skip
            held = sum(len(c) for c in self.validation_classes)
            notes.append(f"{held} images held out for validation")
        if len(classes) < 2:
            raise InputError(
                f"{config.data_dir}: {len(classes)} classes left to train a classifier on "
                "(at least 2 are needed; check the filter and validation options)"
            )
        self.class_names = [c.name for c in classes]
        self.paths, self.labels = labelled_images(classes)
        self.prelogits_hist: list[np.ndarray] = []
        self.found = DataSummary(len(classes), len(self.paths), notes)
        self.nrof_classes = len(classes)
        return classes

    def check_batch(self, batch_size: int, nrof_replicas: int) -> None:
        if batch_size % nrof_replicas != 0:
            raise InputError(
                f"--batch-size {batch_size} does not divide into {nrof_replicas} replicas"
            )

    def build(self, graph: TrainingGraph) -> None:
        from facenet_cli.train.center_loss import CenterLoss
        from facenet_cli.train.heads import create_head

        config = self.config
        self.head = create_head(
            config.loss, self.nrof_classes, scale=config.margin_scale, margin=config.margin,
            easy_margin=config.easy_margin, weight_decay=config.weight_decay,
        )  # fmt: skip
        self.head.build((None, config.embedding_size))
        self.center: CenterLoss | None = None
        if config.center_loss_factor > 0.0:
            self.center = CenterLoss(self.nrof_classes, config.center_loss_alfa, name="centers")
            self.center.build((None, config.embedding_size))

    def trainable_variables(self) -> list[Any]:
        return list(self.head.trainable_variables)

    def checkpoint_extras(self) -> dict[str, Any]:
        extras: dict[str, Any] = {"logits": self.head}
        if self.center is not None:
            extras["centers"] = self.center
        return extras

    def drop_images(self, bad: set[str]) -> None:
        keep = [i for i, p in enumerate(self.paths) if p not in bad]
        self.paths = [self.paths[i] for i in keep]
        self.labels = self.labels[np.asarray(keep, dtype=np.int64)]
        if len(np.unique(self.labels)) < 2:
            raise InputError(f"{self.config.data_dir}: too few readable images left to train on")

    # -- the step -----------------------------------------------------------------------------

    def compile(self, graph: TrainingGraph) -> None:
        import tensorflow as tf

        config = self.config
        model, head, center, optimizer = graph.model, self.head, self.center, graph.optimizer
        trainable = graph.trained_variables()
        nrof_replicas = graph.nrof_replicas
        loss_scaling = graph.loss_scaling
        distributed = graph.distributed
        center_factor = float(config.center_loss_factor)
        norm_factor = float(config.prelogits_norm_loss_factor)
        norm_p = float(config.prelogits_norm_p)
        update_average = graph.average_updater(float(config.moving_average_decay))
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
                return graph.finish_outputs(out)

            self.train_step = train_step
            return

        from facenet_cli.train import distribute

        sum_op = tf.distribute.ReduceOp.SUM
        strategy = graph.strategy

        @tf.function(reduce_retracing=True, autograph=False)
        def step_replicas(images: Any, labels: Any, global_batch: tf.Tensor,
                          step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            per_replica = strategy.run(replica_step, args=(images, labels, global_batch))
            sums = {k: strategy.reduce(sum_op, v, axis=None) for k, v in per_replica.items()}
            update_average(step)
            return graph.finish_outputs(sums)

        def train_distributed(images: tf.Tensor, labels: tf.Tensor,
                              step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            bounds = distribute.split_bounds(int(images.shape[0]), nrof_replicas)
            global_batch = tf.constant(float(images.shape[0]), tf.float32)
            images = graph.distribute_rows(images, bounds)
            return step_replicas(images, graph.distribute_rows(labels, bounds), global_batch, step)

        self.train_step = train_distributed

    # -- the batches --------------------------------------------------------------------------

    def batches(self, run: TrainingRun, last_step: int) -> Generator[Batch, None, None]:
        """The stream's batches from ``run.step`` to ``last_step``, decoded a few ahead."""
        import tensorflow as tf

        config = self.config
        start = time.perf_counter()
        queued: deque[np.ndarray] = deque()
        next_step = run.step

        def top_up() -> None:
            nonlocal next_step
            while next_step < last_step and len(queued) < PREFETCH_BATCHES:
                rows = batch_rows(next_step, config.batch_size, len(self.paths), config.seed)
                augment = np.random.default_rng([config.seed, next_step, 1])
                run.feed([[self.paths[i] for i in rows]], augment)
                queued.append(self.labels[rows])
                next_step += 1

        top_up()
        trained = 0
        while queued:
            labels = queued.popleft()
            images = run.take()
            top_up()

            def step(step: Any, images: Any = images, labels: Any = labels) -> dict[str, Any]:
                return self.train_step(images, tf.constant(labels), step)

            trained += 1
            run.last_round = RoundStats(0, 0, 0, trained, trained * config.batch_size,
                                        time.perf_counter() - start)  # fmt: skip
            yield Batch(step, len(labels))

    # -- the held-out images ------------------------------------------------------------------

    def evaluate(self, run: TrainingRun, *, final: bool) -> None:
        """Loss and accuracy on the held-out images every ``--validate-every-n-epochs``."""
        config = self.config
        due = run.epoch % config.validate_every_n_epochs == 0 or final
        if self.validation_classes and due:
            self.run_validation(run)

    def run_validation(self, run: TrainingRun) -> None:
        """Loss and accuracy on the validation images (centre crops, inference mode)."""
        import tensorflow as tf

        from facenet_cli.data.pipeline import image_dataset

        config = self.config
        names = {name: i for i, name in enumerate(self.class_names)}
        paths = [str(p) for c in self.validation_classes for p in c.image_paths]
        labels = [names[c.name] for c in self.validation_classes for _ in c.image_paths]
        start = time.perf_counter()
        dataset = image_dataset(paths, labels, image_size=config.image_size,
                                batch_size=config.lfw_batch_size,
                                standardization=standardization(config))  # fmt: skip
        loss = correct = 0.0
        norms = []
        for images, batch_labels in dataset:
            out = self.validate(images, tf.cast(batch_labels, tf.int32))
            loss += float(out["loss"])
            correct += float(out["accuracy"])
            norms.append(np.abs(out["prelogits"].numpy()))
        metrics = {events.VAL_LOSS: loss / len(paths), events.VAL_ACCURACY: correct / len(paths)}
        run.summaries.scalars(metrics, run.step)
        run.reporter.evaluation(run.epoch, run.step, metrics)
        # The original's prelogits histogram: |prelogits| clipped to prelogits_hist_max.
        clipped = np.minimum(np.concatenate(norms).ravel(), config.prelogits_hist_max)
        hist, _ = np.histogram(clipped, bins=PRELOGITS_HIST_BINS,
                               range=(0.0, config.prelogits_hist_max))  # fmt: skip
        self.prelogits_hist.append(hist.astype(np.int64))
        np.save(run.model_dir / PRELOGITS_HIST_NAME, np.stack(self.prelogits_hist))
        run.reporter.message(
            f"validation: loss {metrics[events.VAL_LOSS]:.3f}, accuracy "
            f"{metrics[events.VAL_ACCURACY]:.3f} on {len(paths)} images "
            f"({time.perf_counter() - start:.1f} s)"
        )
