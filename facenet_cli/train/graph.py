"""The TensorFlow side of training every objective shares: the model, its moving average, the
optimizer, and the plumbing of a distribution strategy.

The objective (``objective.py``) builds what it trains besides the model inside the strategy's
scope and compiles its own step functions with what is here (``average_updater``,
``distribute_rows``, ``loss_scaling``).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from facenet_cli.config import TrainConfig, resolve_xla
from facenet_cli.models.sidecar import ModelInfo


class BuildsOnGraph(Protocol):
    """What the graph needs of an objective (``objective.Objective`` has it)."""

    SUPPORTS_XLA: bool

    def build(self, graph: TrainingGraph) -> None: ...

    def trainable_variables(self) -> list[Any]: ...

    def compile(self, graph: TrainingGraph) -> None: ...


class TrainingGraph:
    """The model, its moving average and the optimizer, built for ``objective``, whose step
    functions are compiled last.

    Built under ``strategy.scope()``. With TensorFlow's default strategy the steps run as plain
    ``tf.function``s; with a real one (mirrored, multi-worker) every global batch is split
    between the replicas, each replica's loss is its share of the global batch's mean (so the
    all-reduced gradient is the one-device gradient) and batch norm statistics are synchronised
    over the global batch.
    """

    def __init__(self, config: TrainConfig, info: ModelInfo, objective: BuildsOnGraph,
                 strategy: Any = None) -> None:  # fmt: skip
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
            and objective.SUPPORTS_XLA
            and not self.distributed
            and not op_determinism_enabled()
        )
        self.local_replicas = self._local_replicas() if self.distributed else [0]
        # Multi-worker: this process feeds only its own replicas, so it decodes only their rows.
        self.decodes_share = len(self.local_replicas) < self.nrof_replicas
        self.objective = objective
        with strategy.scope():
            self.model, self.ema_model, self.optimizer = self._build(config, policy)
        objective.compile(self)

    def _build(self, config: TrainConfig, policy: str | None) -> tuple[Any, Any, Any]:
        """The trained model, its moving-average twin and the optimizer (built)."""
        import keras

        from facenet_cli.models.loading import build_model
        from facenet_cli.train.optimizers import create_optimizer

        # The objective's variables first (their initial values then do not depend on the
        # model's size: a run's seed gives the same head whatever the model).
        self.objective.build(self)
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
        optimizer.build([*model.trainable_variables, *self.objective.trainable_variables()])
        return model, ema_model, optimizer

    def trained_variables(self) -> list[Any]:
        """What the optimizer updates: the model's variables and the objective's."""
        return [*self.model.trainable_variables, *self.objective.trainable_variables()]

    def finish_outputs(self, out: dict[str, Any]) -> dict[str, Any]:
        """A step's outputs, with the loss scale of a mixed-precision run added."""
        import tensorflow as tf

        if not self.mixed_precision:
            return out
        scale = self.optimizer.scale_loss(1.0) if self.loss_scaling else 1.0
        return {**out, "loss_scale": tf.cast(scale, tf.float32)}

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

    def distribute_rows(self, images: Any, bounds: np.ndarray, offset: int = 0) -> Any:
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
