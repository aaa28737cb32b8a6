"""The TensorFlow side of training: the model, its moving average, the optimizer, the steps.

The step computes the loss and its statistics with ``facenet_cli.train.loss`` (the functions
the tests check) on each replica's share of the triplets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facenet_cli.config import TrainConfig, resolve_xla
from facenet_cli.models.sidecar import ModelInfo


class TrainingGraph:
    """The model, its moving average, the optimizer and the compiled steps.

    Built under ``strategy.scope()``. With TensorFlow's default strategy the steps run as plain
    ``tf.function``s; with a real one (mirrored, multi-worker) every global batch is split
    between the replicas at triplet boundaries, each replica's loss is its triplets' share of
    the global batch's mean (so the all-reduced gradient is the one-device gradient), batch
    norm statistics are synchronised over the global batch, and selection embeddings are
    all-gathered so every worker selects from the same ones.
    """

    def __init__(self, config: TrainConfig, info: ModelInfo, strategy: Any = None) -> None:
        import tensorflow as tf

        from facenet_cli.train import distribute

        strategy = strategy if strategy is not None else tf.distribute.get_strategy()
        self.strategy = strategy
        self.distributed = distribute.is_distributed(strategy)
        self.nrof_replicas = int(strategy.num_replicas_in_sync)
        self.device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
        policy = (
            distribute.mixed_precision_policy(self.device.startswith("/GPU"))
            if config.mixed_precision
            else None
        )
        self.mixed_precision = policy is not None
        # Loss scaling only for float16: bfloat16 has float32's exponent range.
        self.loss_scaling = policy == "mixed_float16"
        self.info = info
        # XLA only without replicas (the steps of a real strategy run collectives that are
        # compiled as they are) and without op determinism (XLA has no deterministic version of
        # some gradients, MaxPool's among them); the run says so when --xla was asked for.
        self.xla = (
            resolve_xla(config.xla, self.device.startswith("/GPU"))
            and not self.distributed
            and not op_determinism_enabled()
        )
        self.local_replicas = self._local_replicas() if self.distributed else [0]
        # Multi-worker: this process feeds only its own replicas, so it decodes only their rows.
        self.decodes_share = len(self.local_replicas) < self.nrof_replicas
        with strategy.scope():
            self.model, self.ema_model, self.optimizer = self._build(config, policy)
        self.embed, self.train_step, self.train_rows = self._compile(config)

    def _build(self, config: TrainConfig, policy: str | None) -> tuple[Any, Any, Any]:
        """The trained model, its moving-average twin and the optimizer (built)."""
        import keras

        from facenet_cli.models.loading import build_model
        from facenet_cli.train.optimizers import create_optimizer

        previous_policy = keras.mixed_precision.global_policy()
        if policy is not None:
            # Lower-precision compute, float32 variables; only for the layers built here.
            keras.mixed_precision.set_global_policy(policy)
        try:
            model = build_model(self.info)
            ema_model = build_model(self.info)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        if self.distributed:
            # Batch statistics of the global batch, as on one device (Keras all-reduces the
            # sums and counts per layer); only the trained model runs in replica context.
            for layer in model._flatten_layers(include_self=False, recursive=True):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        ema_model.set_weights(model.get_weights())
        optimizer = create_optimizer(config.optimizer, max(config.learning_rate, 0.0))
        if self.loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build([*model.trainable_variables, *self.head_variables()])
        return model, ema_model, optimizer

    def head_variables(self) -> list[Any]:
        """Trained variables besides the model's (a classifier's logits layer); none here."""
        return []

    def trained_variables(self) -> list[Any]:
        """What the optimizer updates."""
        return [*self.model.trainable_variables, *self.head_variables()]

    def checkpoint_extras(self) -> dict[str, Any]:
        """Objects a checkpoint holds besides the models and the optimizer."""
        return {}

    def average_updater(self, decay: float) -> Any:
        """``update(step)``: move the moving-average model towards the trained one."""
        import tensorflow as tf

        strategy = self.strategy
        averaged = list(zip(self.ema_model.trainable_variables, self.model.trainable_variables,
                            strict=True))  # fmt: skip
        copied = list(zip(self.ema_model.non_trainable_variables,
                          self.model.non_trainable_variables, strict=True))  # fmt: skip

        def update_average(step: tf.Tensor) -> None:
            # The original's ExponentialMovingAverage with num_updates = global step.
            step_f = tf.cast(step, tf.float32)
            rate = tf.minimum(decay, (1.0 + step_f) / (10.0 + step_f))

            def blend(average: Any, value: Any) -> Any:
                return average.assign(rate * average + (1.0 - rate) * value)

            def copy(average: Any, value: Any) -> Any:
                return average.assign(value)

            for pairs, fn in ((averaged, blend), (copied, copy)):
                for average, value in pairs:
                    if self.distributed:
                        # Each device's copy from the same device's weights.
                        strategy.extended.update(_tf_variable(average), fn,
                                                 args=(_tf_variable(value),))  # fmt: skip
                    else:
                        fn(average, value)

        return update_average

    def _compile(self, config: TrainConfig) -> tuple[Any, Any, Any]:
        """The compiled ``embed``, ``train_step`` and ``train_rows`` functions."""
        import tensorflow as tf

        from facenet_cli.train import distribute
        from facenet_cli.train.loss import split_triplets, triplet_loss, triplet_stats

        model, optimizer = self.model, self.optimizer
        strategy = self.strategy
        nrof_replicas = self.nrof_replicas
        loss_scaling = self.loss_scaling
        alpha = float(config.alpha)
        decay = float(config.moving_average_decay)
        selection_training = config.selection_mode == "training"
        spec = tf.TensorSpec((None, config.image_size, config.image_size, 3), tf.float32)
        step_spec = tf.TensorSpec((), tf.int64)
        trainable = model.trainable_variables
        update_average = self.average_updater(decay)

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
                loss = tf.math.multiply_no_nan(
                    triplet_loss(anchor, positive, negative, alpha), share
                )
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

        def finish(sums: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            out = dict(sums)
            if self.mixed_precision:
                scale = optimizer.scale_loss(1.0) if loss_scaling else 1.0
                out["loss_scale"] = tf.cast(scale, tf.float32)
            return out

        if not self.distributed:
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

            if not self.xla:
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
                with tf.device(self.device):
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
            gathered = embed_replicas(self._distribute(images, bounds, offset))
            return strategy.experimental_local_results(gathered)[0]

        def train_distributed(images: tf.Tensor, step: tf.Tensor, nrof_rows: int | None = None,
                              offset: int = 0) -> dict[str, tf.Tensor]:  # fmt: skip
            total = int(images.shape[0]) if nrof_rows is None else nrof_rows
            bounds = distribute.split_bounds(total, nrof_replicas, unit=3)
            nrof_triplets = tf.constant(total // 3, tf.float32)
            return step_replicas(self._distribute(images, bounds, offset), nrof_triplets, step)

        def train_rows_distributed(cache: tf.Tensor, rows: tf.Tensor,
                                   step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            return train_distributed(tf.gather(cache, rows), step)

        return embed_distributed, train_distributed, train_rows_distributed

    def _distribute(self, images: Any, bounds: np.ndarray, offset: int = 0) -> Any:
        """Replica ``r`` (global id) gets rows ``bounds[r]:bounds[r + 1]`` of the global batch,
        of which ``images`` holds the rows from ``offset`` on."""

        def part(context: Any) -> Any:
            r = int(context.replica_id_in_sync_group)
            return images[int(bounds[r]) - offset : int(bounds[r + 1]) - offset]

        return self.strategy.experimental_distribute_values_from_function(part)

    def _local_replicas(self) -> list[int]:
        """Global ids of this process's replicas (the value function runs for those only)."""
        import tensorflow as tf

        ids: list[int] = []

        def probe(context: Any) -> Any:
            ids.append(int(context.replica_id_in_sync_group))
            return tf.zeros(())

        self.strategy.experimental_distribute_values_from_function(probe)
        return sorted(ids)

    def any_worker(self, flag: bool) -> bool:
        """Whether ``flag`` is set on any worker (a collective: every worker must call it)."""
        import tensorflow as tf

        value = self.strategy.experimental_distribute_values_from_function(
            lambda _context: tf.constant(float(flag))
        )
        return float(self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)) > 0

    def local_rows(self, nrof_rows: int, unit: int = 1) -> tuple[int, int]:
        """The rows ``[start, stop)`` of a global batch that this process's replicas take."""
        from facenet_cli.train import distribute

        if not self.decodes_share:
            return 0, nrof_rows
        return distribute.local_span(nrof_rows, self.nrof_replicas, self.local_replicas, unit)

    def set_learning_rate(self, value: float) -> None:
        self.optimizer.learning_rate.assign(value)


def _tf_variable(variable: Any) -> Any:
    """The ``tf.Variable`` (a distributed one under a strategy) behind a Keras variable."""
    import keras

    return variable.value if isinstance(variable, keras.Variable) else variable


def configure_devices(config: TrainConfig) -> None:
    """GPU memory: grow on demand when asked for less than the whole device."""
    import tensorflow as tf

    if config.gpu_memory_fraction < 1.0:
        for gpu in tf.config.list_physical_devices("GPU"):
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialised (a second run in one process)


# Intra-op threads of a deterministic run. Eigen and oneDNN split a reduction (a convolution's
# or a matrix product's sums) by the size of their thread pool, so the pool's size, not the
# cores the process may use, must be fixed for the sums to add up in the same order.
DETERMINISTIC_THREADS = 2


def op_determinism_enabled() -> bool:
    """Whether ``enable_op_determinism`` is in force in this process."""
    from tensorflow.python.framework import config as tf_config

    return bool(tf_config.is_op_determinism_enabled())


def configure_determinism() -> str | None:
    """Deterministic ops and ``DETERMINISTIC_THREADS`` intra-op threads, for the whole process.

    The same seed then gives the same weights on any core count with the same TensorFlow and
    the same CPU instruction set (oneDNN and OpenBLAS pick their kernels by it).

    Returns:
        None, or a warning: TensorFlow already runs in this process with another thread count
        (fixed when it starts), so the ops are deterministic but for this core count only.
    """
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    threads = tf.config.threading.get_intra_op_parallelism_threads()
    if threads == DETERMINISTIC_THREADS:
        return None
    try:
        tf.config.threading.set_intra_op_parallelism_threads(DETERMINISTIC_THREADS)
    except RuntimeError:
        return (
            f"deterministic: TensorFlow already runs in this process with "
            f"{threads or 'one per core'} intra-op threads, not {DETERMINISTIC_THREADS}; the "
            "results repeat on this machine's core count only"
        )
    return None
