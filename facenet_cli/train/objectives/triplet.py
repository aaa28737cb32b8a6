"""The triplet objective: online selection rounds and the triplet loss (``--loss triplet``).

One selection round: sample people, embed their images, select triplets, train on the triplets
(batches of rows a, p, n, a, p, n, ...). Rounds are cut at the step the trainer asks for (an
epoch's end, the stop step), so a global step always says where a run is. The step computes the
loss and its statistics with ``facenet_cli.train.loss`` (the functions the tests check) on each
replica's share of the triplets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig
from facenet_cli.errors import InputError
from facenet_cli.train.objective import Batch, DataSummary, Objective, RoundStats, TrainingRun
from facenet_cli.train.settings import left_out_files, read_classes
from facenet_cli.train.triplets import sample_people, select_triplets

if TYPE_CHECKING:
    from facenet_cli.data.dataset import ImageClass
    from facenet_cli.train.graph import TrainingGraph


class TripletObjective(Objective):
    """Triplets of the people sampled in each round (the original's ``train_tripletloss.py``)."""

    NAME = "triplet"
    STEP_TAGS = {
        "active_fraction": events.TRIPLETS_ACTIVE_FRACTION,
        "pos_dist": events.TRIPLETS_POS_DIST,
        "neg_dist": events.TRIPLETS_NEG_DIST,
        "loss_scale": events.LOSS_SCALE,
    }
    SUPPORTS_XLA = True

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        if config.batch_size % 3 != 0:
            raise InputError(
                f"--batch-size {config.batch_size} is not a multiple of 3: every batch holds "
                "whole (anchor, positive, negative) triplets; use e.g. "
                f"{max(3, config.batch_size - config.batch_size % 3)}"
            )

    def load_classes(self) -> list[ImageClass]:
        """The dataset's classes that can form pairs, checked against ``people_per_batch``.

        Raises:
            InputError: fewer usable classes than ``people_per_batch`` (or than 2).
        """
        config = self.config
        classes = read_classes(config, self.reporter)
        notes = left_out_files(classes)
        usable = [c for c in classes if len(c) >= 2]
        dropped = len(classes) - len(usable)
        if dropped:
            self.reporter.warning(
                f"dropped {dropped} of {len(classes)} classes with a single image "
                "(they cannot form anchor-positive pairs)"
            )
            notes.append(f"{dropped} identities with a single image (no anchor-positive pair)")
        needed = max(config.people_per_batch, 2)
        if len(usable) < needed:
            raise InputError(
                f"{config.data_dir}: {len(usable)} classes with 2 or more images, but "
                f"--people-per-batch is {config.people_per_batch}; lower it or add identities"
            )
        self.class_paths = [[str(p) for p in c.image_paths] for c in usable]
        self.found = DataSummary(len(usable), sum(len(c) for c in usable), notes)
        return usable

    def check_batch(self, batch_size: int, nrof_replicas: int) -> None:
        from facenet_cli.train import distribute

        distribute.check_global_batch(batch_size, nrof_replicas)

    def compile(self, graph: TrainingGraph) -> None:
        self.graph = graph
        self.embed, self.train_step, self.train_rows = compile_steps(graph, self.config)

    def nothing_trained(self, rounds: int) -> str:
        return (
            f"no triplets in {rounds} selection rounds in a row: every negative is beyond the "
            "margin (try a larger --alpha)"
        )

    def drop_images(self, bad: set[str]) -> None:
        self.class_paths = [[p for p in paths if p not in bad] for paths in self.class_paths]
        self.class_paths = [p for p in self.class_paths if len(p) >= 2]
        if len(self.class_paths) < self.config.people_per_batch:
            raise InputError(
                f"{self.config.data_dir}: too few readable classes left "
                f"({len(self.class_paths)}) for --people-per-batch "
                f"{self.config.people_per_batch}"
            )

    # -- one selection round ------------------------------------------------------------------

    def sample_round(self, run: TrainingRun) -> tuple[list[str], np.ndarray]:
        """Sample people; returns the paths and the images per class."""
        config = self.config
        sizes = [len(p) for p in self.class_paths]
        cls, img, per_class = sample_people(
            sizes, config.people_per_batch, config.images_per_person, run.state.rng
        )
        paths = [self.class_paths[c][i] for c, i in zip(cls.tolist(), img.tolist(), strict=True)]
        return paths, per_class

    def embed_round(self, run: TrainingRun, paths: list[str]) -> tuple[np.ndarray, Any] | None:
        """Embeddings of the sampled images, and the decoded images when they can be reused.

        Without random crop or flip a triplet row is exactly the image embedded for selection,
        so the round's images are decoded once and kept on the device (the original decoded
        every row again: each image appears in dozens of triplets). Returns None when a worker
        of a multi-worker run found an unreadable image (it is dropped; the round resampled).
        """
        import tensorflow as tf

        graph = self.graph
        batches = run.worker_batches(paths, unit=1)
        run.feed([part for _, _, part in batches], run.state.rng)
        if graph.decodes_share:
            from facenet_cli.train.feeder import embed_share

            # A worker that decodes only its share cannot keep the whole round for training.
            embeddings, failed = embed_share(run, self.embed, batches, self.config.image_size)
            # All workers must decide alike, or one would wait for the others in a collective:
            # a decoding error on any worker makes every worker look for the unreadable files.
            if graph.any_worker(failed):
                run.drop_unreadable(paths)
                return None
            return embeddings, None
        config = self.config
        reuse = not (config.random_crop or config.random_flip or config.random_rotate
                     or config.random_color)  # fmt: skip
        parts = []
        kept = []
        for _ in batches:
            batch = run.take()
            if reuse:
                with tf.device(graph.device):
                    batch = tf.identity(batch)
                kept.append(batch)
            parts.append(self.embed(batch))
        embeddings = np.concatenate([p.numpy() for p in parts], axis=0)
        cache = None
        if reuse:
            with tf.device(graph.device):
                cache = tf.concat(kept, axis=0)
        return embeddings, cache

    def batches(self, run: TrainingRun, last_step: int) -> Generator[Batch, None, None]:
        """One selection round's batches (none when the round found no triplet)."""
        import tensorflow as tf

        config = self.config
        round_start = time.perf_counter()
        paths, per_class = self.sample_round(run)
        embedded = self.embed_round(run, paths)
        if embedded is None:
            return  # unreadable images were dropped; the next round resamples
        embeddings, cache = embedded
        triplets, nrof_pairs = select_triplets(
            embeddings, per_class, config.people_per_batch, config.alpha,
            config.triplet_selection, run.state.rng,
        )  # fmt: skip
        selection_time = time.perf_counter() - round_start
        run.summaries.scalars(
            {
                events.TRIPLETS_SELECTED: len(triplets),
                events.TRIPLETS_PAIRS: nrof_pairs,
                events.TIME_SELECTION: selection_time,
            },
            run.step + 1,
        )
        run.last_round = RoundStats(len(paths), len(triplets), nrof_pairs, 0, 0, selection_time)
        if len(triplets) == 0:
            run.reporter.message(
                f"step {run.step}: no triplets among {nrof_pairs} pairs; sampling again"
            )
            return
        room = last_step - run.step
        nrof_batches = min(math.ceil(3 * len(triplets) / config.batch_size), room)
        rows = triplets[: nrof_batches * config.batch_size // 3].reshape(-1)
        if cache is None:
            batches = run.worker_batches([paths[i] for i in rows], unit=3)
            nrof_batches = run.feed([part for _, _, part in batches], run.state.rng)
        graph = self.graph
        for batch in range(nrof_batches):
            if cache is None:
                images = run.take()
                nrof_images, offset, _ = batches[batch]
                if graph.decodes_share:

                    def step_share(step: Any, images: Any = images, n: int = nrof_images,
                                   offset: int = offset) -> dict[str, Any]:  # fmt: skip
                        return self.train_step(images, step, n, offset)

                    yield Batch(step_share, nrof_images, len(triplets))
                else:

                    def step_plain(step: Any, images: Any = images) -> dict[str, Any]:
                        return self.train_step(images, step)

                    yield Batch(step_plain, nrof_images, len(triplets))
            else:
                batch_rows = rows[batch * config.batch_size : (batch + 1) * config.batch_size]

                def step_rows(step: Any, batch_rows: Any = batch_rows) -> dict[str, Any]:
                    return self.train_rows(cache, tf.constant(batch_rows), step)

                yield Batch(step_rows, len(batch_rows), len(triplets))


def compile_steps(graph: TrainingGraph, config: TrainConfig) -> tuple[Any, Any, Any]:
    """The compiled ``embed``, ``train_step`` and ``train_rows`` functions of the triplet loss.

    Under a real strategy every global batch is split between the replicas at triplet
    boundaries, each replica's loss is its triplets' share of the global batch's mean, and
    selection embeddings are all-gathered so every worker selects from the same ones.
    """
    import tensorflow as tf

    from facenet_cli.train import distribute
    from facenet_cli.train.loss import split_triplets, triplet_loss, triplet_stats

    model, optimizer = graph.model, graph.optimizer
    strategy = graph.strategy
    nrof_replicas = graph.nrof_replicas
    loss_scaling = graph.loss_scaling
    alpha = float(config.alpha)
    decay = float(config.moving_average_decay)
    selection_training = config.selection_mode == "training"
    spec = tf.TensorSpec((None, config.image_size, config.image_size, 3), tf.float32)
    step_spec = tf.TensorSpec((), tf.int64)
    trainable = model.trainable_variables
    update_average = graph.average_updater(decay)

    def embed_body(images: tf.Tensor) -> tf.Tensor:
        prelogits = tf.cast(model(images, training=selection_training), tf.float32)
        return tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)

    def replica_step(images: tf.Tensor, nrof_triplets: tf.Tensor) -> dict[str, tf.Tensor]:
        """This replica's shares of the global batch's means (summed over the replicas)."""
        with tf.GradientTape() as tape:
            prelogits = tf.cast(model(images, training=True), tf.float32)
            embeddings = tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)
            anchor, positive, negative = split_triplets(embeddings)
            # This replica's means weighted by its share of the global batch's triplets (a
            # replica without triplets contributes 0, not the NaN mean of nothing).
            share = tf.cast(tf.shape(anchor)[0], tf.float32) / nrof_triplets
            loss = tf.math.multiply_no_nan(triplet_loss(anchor, positive, negative, alpha), share)
            if model.losses:
                # Every replica holds the same weights: 1/R of the decay each.
                regularisation = tf.add_n([tf.cast(x, tf.float32) for x in model.losses])
                total = loss + regularisation / nrof_replicas
            else:
                total = loss
            scaled = optimizer.scale_loss(total) if loss_scaling else total
        # Gradients are summed over the replicas by the optimizer; the loss-scale
        # optimizer unscales them and skips a step whose gradients are not finite.
        grads = tape.gradient(scaled, trainable)
        optimizer.apply_gradients(zip(grads, trainable, strict=True))
        stats = triplet_stats(anchor, positive, negative, alpha)
        return {
            "loss": total,
            "triplet_loss": loss,
            **{k: tf.math.multiply_no_nan(v, share) for k, v in stats.items()},
        }

    finish = graph.finish_outputs

    if not graph.distributed:
        batch_size = config.batch_size

        def step_body(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            nrof_triplets = tf.cast(tf.shape(images)[0] // 3, tf.float32)
            sums = replica_step(images, nrof_triplets)
            update_average(step)
            return finish(sums)

        # autograph=False: no data-dependent Python control flow here to convert.
        @tf.function(input_signature=[spec], reduce_retracing=True, autograph=False)
        def embed_graph(images: tf.Tensor) -> tf.Tensor:
            return embed_body(images)

        @tf.function(input_signature=[spec, step_spec], autograph=False)
        def step_graph(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            return step_body(images, step)

        if not graph.xla:
            embed, train_step = embed_graph, step_graph
        else:
            # XLA compiles one program per input shape: full batches (all but a round's
            # last) run compiled, a shorter last batch runs the plain graph instead of
            # compiling the model again for every size it comes in.
            full = tf.TensorSpec((batch_size, config.image_size, config.image_size, 3),
                                 tf.float32)  # fmt: skip

            @tf.function(input_signature=[full], autograph=False, jit_compile=True)
            def embed_xla(images: tf.Tensor) -> tf.Tensor:
                return embed_body(images)

            @tf.function(input_signature=[full, step_spec], autograph=False, jit_compile=True)
            def step_xla(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
                return step_body(images, step)

            def embed(images: tf.Tensor) -> tf.Tensor:
                compiled = int(images.shape[0]) == batch_size
                return (embed_xla if compiled else embed_graph)(images)

            def train_step(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
                compiled = int(images.shape[0]) == batch_size
                return (step_xla if compiled else step_graph)(images, step)

        def train_rows(cache: tf.Tensor, rows: tf.Tensor, step: tf.Tensor) -> dict[str, Any]:
            # Rows of a round's images already decoded for its selection, gathered on the
            # device (outside the step: the cache's size changes from round to round).
            with tf.device(graph.device):
                images = tf.gather(cache, rows)
            return train_step(images, step)

        return embed, train_step, train_rows

    sum_op = tf.distribute.ReduceOp.SUM

    @tf.function(reduce_retracing=True, autograph=False)
    def embed_replicas(images: Any) -> Any:
        def body(part: tf.Tensor) -> tf.Tensor:
            # Parts may differ by one image; all_gather concatenates them in replica order.
            return tf.distribute.get_replica_context().all_gather(embed_body(part), axis=0)

        return strategy.run(body, args=(images,))

    @tf.function(reduce_retracing=True, autograph=False)
    def step_replicas(images: Any, nrof_triplets: tf.Tensor, step: tf.Tensor) -> Any:
        per_replica = strategy.run(replica_step, args=(images, nrof_triplets))
        sums = {k: strategy.reduce(sum_op, v, axis=None) for k, v in per_replica.items()}
        update_average(step)
        return finish(sums)

    # ``images`` is the whole global batch, or (``offset``) only this worker's rows of a
    # global batch of ``nrof_rows`` (see ``local_rows``).
    def embed_distributed(images: tf.Tensor, nrof_rows: int | None = None,
                          offset: int = 0) -> tf.Tensor:  # fmt: skip
        total = int(images.shape[0]) if nrof_rows is None else nrof_rows
        bounds = distribute.split_bounds(total, nrof_replicas)
        gathered = embed_replicas(graph.distribute_rows(images, bounds, offset))
        return strategy.experimental_local_results(gathered)[0]

    def train_distributed(images: tf.Tensor, step: tf.Tensor, nrof_rows: int | None = None,
                          offset: int = 0) -> dict[str, tf.Tensor]:  # fmt: skip
        total = int(images.shape[0]) if nrof_rows is None else nrof_rows
        bounds = distribute.split_bounds(total, nrof_replicas, unit=3)
        nrof_triplets = tf.constant(total // 3, tf.float32)
        return step_replicas(graph.distribute_rows(images, bounds, offset), nrof_triplets, step)

    def train_rows_distributed(cache: tf.Tensor, rows: tf.Tensor,
                               step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
        return train_distributed(tf.gather(cache, rows), step)

    return embed_distributed, train_distributed, train_rows_distributed
