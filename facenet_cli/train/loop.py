"""The triplet-loss training loop with online selection, full-state checkpoints and summaries.

One selection round: sample people, embed their images, select triplets, train on the triplets
(batches of rows a, p, n, a, p, n, ...). Epochs are exactly ``epoch_size`` steps (the last round
of an epoch is cut there), so a global step always says where a run is, and a checkpoint taken
at any step resumes it. After each epoch the moving-average model is evaluated on the pairs
through the same code as ``facenet validate``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli import events
from facenet_cli.config import TrainConfig, default_logs_dir, default_models_dir
from facenet_cli.data.dataset import ImageClass, get_dataset
from facenet_cli.errors import (
    EXIT_INTERRUPTED,
    FacenetError,
    InputError,
    TrainingDiverged,
)
from facenet_cli.train import checkpoints as ckpt
from facenet_cli.train.reporting import ConsoleReporter, Reporter, StepReport
from facenet_cli.train.schedule import STOP, learning_rate, read_schedule_file
from facenet_cli.train.triplets import MODES, sample_people, select_triplets

SELECTION_MODES = ("inference", "training")
# Consecutive selection rounds without a single triplet before the run gives up.
MAX_EMPTY_ROUNDS = 100
# A checkpoint is also written mid-epoch when this long has passed since the last one.
CHECKPOINT_INTERVAL_S = 600.0
# Demo settings used where the command line left the defaults (a CPU-sized run).
DEMO_EPOCH_SIZE = 40
DEMO_MAX_EPOCHS = 10


class TrainingInterrupted(FacenetError):
    """Ctrl-C: a checkpoint was saved; the message says how to resume."""

    exit_code = EXIT_INTERRUPTED


@dataclass(frozen=True)
class RoundStats:
    """What one selection round did (for summaries and the pipeline benchmark)."""

    embedded: int
    triplets: int
    pairs: int
    steps: int
    trained_images: int
    selection_s: float


@dataclass(frozen=True)
class RunResult:
    """What a finished (or stopped) run produced."""

    run_name: str
    run_dir: Path
    log_dir: Path
    step: int
    epoch: int
    lfw_accuracy: float | None
    export_dir: Path | None
    stop_reason: str


# ------------------------------------------------------------------------------- configuration


def resolve_config(config: TrainConfig, reporter: Reporter) -> TrainConfig:
    """Fill in what the command line left open: the demo data, the model, resumed settings."""
    if config.resume is not None:
        model_dir = ckpt.resolve_run_dir(config.resume, config.models_base_dir)
        saved = ckpt.read_config(model_dir)
        if saved.data_dir is None or saved.model_def is None:
            raise InputError(
                f"{model_dir / ckpt.CONFIG_NAME}: names no data_dir and model_def to resume with"
            )
        defaults = TrainConfig()
        # The run's own settings win; only how long to run and on what may be changed.
        overrides = {
            name: getattr(config, name)
            for name in ("max_nrof_epochs", "max_steps", "strategy")
            if getattr(config, name) != getattr(defaults, name)
        }
        return dataclasses.replace(saved, resume=model_dir, **overrides)
    changes: dict[str, Any] = {}
    if config.data_dir is None:
        from facenet_cli.align.pipeline import ensure_demo_aligned

        reporter.message("no --data-dir: training on the built-in demo faces")
        demo = ensure_demo_aligned()
        changes.update(data_dir=str(demo.aligned_train))
        if config.lfw_dir is None:
            changes.update(lfw_dir=demo.aligned_test, lfw_pairs=demo.pairs)
        if config.logs_base_dir == default_logs_dir():
            changes["logs_base_dir"] = demo.root / "logs"
        if config.models_base_dir == default_models_dir():
            changes["models_base_dir"] = demo.root / "models"
        if config.model_def is None:
            changes["model_def"] = "small"
        defaults = TrainConfig()
        if config.epoch_size == defaults.epoch_size:
            changes["epoch_size"] = DEMO_EPOCH_SIZE
        if config.max_nrof_epochs == defaults.max_nrof_epochs:
            changes["max_nrof_epochs"] = DEMO_MAX_EPOCHS
    elif config.model_def is None:
        changes["model_def"] = "inception_resnet_v1"
    if config.lfw_dir is not None and config.lfw_pairs is None and "lfw_pairs" not in changes:
        changes["lfw_pairs"] = Path(config.lfw_dir) / "pairs.txt"
    return dataclasses.replace(config, **changes)


def check_config(config: TrainConfig) -> None:
    """Reject settings that would fail later with an obscure error (before any data is read).

    Raises:
        InputError: a batch size that is no multiple of 3, an unknown option value or model,
            a missing schedule file.
    """
    from facenet_cli.train.margin import LOSSES

    if config.loss not in LOSSES:
        raise InputError(f"--loss {config.loss!r}: choose {', '.join(LOSSES)}")
    if config.loss != "triplet":
        from facenet_cli.train.classifier import check_classifier_config

        check_classifier_config(config)
    elif config.batch_size % 3 != 0:
        raise InputError(
            f"--batch-size {config.batch_size} is not a multiple of 3: every batch holds whole "
            "(anchor, positive, negative) triplets; use e.g. "
            f"{max(3, config.batch_size - config.batch_size % 3)}"
        )
    if config.triplet_selection not in MODES:
        raise InputError(
            f"--triplet-selection {config.triplet_selection!r}: choose {', '.join(MODES)}"
        )
    if config.selection_mode not in SELECTION_MODES:
        raise InputError(
            f"--selection-mode {config.selection_mode!r}: choose {', '.join(SELECTION_MODES)}"
        )
    if config.images_per_person < 2 and config.loss == "triplet":
        raise InputError("--images-per-person must be at least 2 to form anchor-positive pairs")
    if config.learning_rate <= 0 and config.learning_rate_schedule_file is None:
        raise InputError("--learning-rate <= 0 needs --learning-rate-schedule-file")
    from facenet_cli.train.distribute import STRATEGIES

    if config.strategy not in STRATEGIES:
        raise InputError(f"--strategy {config.strategy!r}: choose {', '.join(STRATEGIES)}")
    from facenet_cli.train.optimizers import OPTIMIZERS

    if config.optimizer.strip().upper() not in OPTIMIZERS:
        raise InputError(f"--optimizer {config.optimizer}: choose {', '.join(OPTIMIZERS)}")
    if config.model_def is not None:
        from facenet_cli.models.registry import resolve_model_def

        resolve_model_def(config.model_def)  # an unknown model fails before any run directory
    if config.learning_rate_schedule_file is not None and config.learning_rate <= 0:
        if not Path(config.learning_rate_schedule_file).is_file():
            raise InputError(f"{config.learning_rate_schedule_file}: schedule file not found")


def check_paths(config: TrainConfig) -> None:
    """Evaluation data named on the command line must exist.

    Raises:
        InputError: a missing ``--lfw-dir``, a missing or malformed pairs file.
    """
    if config.lfw_dir is not None:
        if not Path(config.lfw_dir).is_dir():
            raise InputError(f"{config.lfw_dir}: --lfw-dir is not a directory")
        if config.lfw_pairs is None or not Path(config.lfw_pairs).is_file():
            raise InputError(f"{config.lfw_pairs}: pairs file not found (--lfw-pairs)")
        from facenet_cli.data.pairs import read_pairs

        read_pairs(config.lfw_pairs)  # a malformed line fails now, not after the first epoch


def load_training_classes(config: TrainConfig, reporter: Reporter) -> list[ImageClass]:
    """The dataset's classes that can form pairs, checked against ``people_per_batch``.

    Raises:
        InputError: fewer usable classes than ``people_per_batch`` (or than 2).
    """
    assert config.data_dir is not None
    classes = get_dataset(config.data_dir)
    usable = [c for c in classes if len(c) >= 2]
    dropped = len(classes) - len(usable)
    if dropped:
        reporter.warning(
            f"dropped {dropped} of {len(classes)} classes with a single image "
            "(they cannot form anchor-positive pairs)"
        )
    needed = max(config.people_per_batch, 2)
    if len(usable) < needed:
        raise InputError(
            f"{config.data_dir}: {len(usable)} classes with 2 or more images, but "
            f"--people-per-batch is {config.people_per_batch}; lower it or add identities"
        )
    return usable


# ------------------------------------------------------------------------------- the TF parts


class TrainingGraph:
    """The model, its moving average, the optimizer and the compiled steps.

    Built under ``strategy.scope()``. With TensorFlow's default strategy the steps run as plain
    ``tf.function``s; with a real one (mirrored, multi-worker) every global batch is split
    between the replicas at triplet boundaries, each replica's loss is its triplets' share of
    the global batch's mean (so the all-reduced gradient is the one-device gradient), batch
    norm statistics are synchronised over the global batch, and selection embeddings are
    all-gathered so every worker selects from the same ones.
    """

    def __init__(self, config: TrainConfig, info: Any, strategy: Any = None) -> None:
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
        with strategy.scope():
            self._build(config, policy)
        self._compile(config)

    def _build(self, config: TrainConfig, policy: str | None) -> None:
        import keras

        from facenet_cli.models.registry import create_model
        from facenet_cli.train.optimizers import create_optimizer

        assert config.model_def is not None
        kwargs = dict(keep_probability=config.keep_probability, weight_decay=config.weight_decay)
        previous_policy = keras.mixed_precision.global_policy()
        if policy is not None:
            # Lower-precision compute, float32 variables; only for the layers built here.
            keras.mixed_precision.set_global_policy(policy)
        try:
            self.model = create_model(config.model_def, config.embedding_size,
                                      config.image_size, **kwargs)  # fmt: skip
            self.ema_model = create_model(config.model_def, config.embedding_size,
                                          config.image_size, **kwargs)  # fmt: skip
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        if self.distributed:
            # Batch statistics of the global batch, as on one device (Keras all-reduces the
            # sums and counts per layer); only the trained model runs in replica context.
            for layer in self.model._flatten_layers(include_self=False, recursive=True):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        self.ema_model.set_weights(self.model.get_weights())
        self.optimizer = create_optimizer(config.optimizer, max(config.learning_rate, 0.0))
        if self.loss_scaling:
            self.optimizer = keras.optimizers.LossScaleOptimizer(self.optimizer)
        self.optimizer.build(self.trained_variables())

    def trained_variables(self) -> list[Any]:
        """What the optimizer updates (the classifier graph adds its class weights)."""
        return list(self.model.trainable_variables)

    def checkpoint_extras(self) -> dict[str, Any]:
        """Objects a checkpoint holds besides the models and the optimizer."""
        return {}

    def _compile(self, config: TrainConfig) -> None:
        import tensorflow as tf

        from facenet_cli.train import distribute
        from facenet_cli.train.loss import split_triplets, triplet_distances

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

        def embed_body(images: tf.Tensor) -> tf.Tensor:
            prelogits = tf.cast(model(images, training=selection_training), tf.float32)
            return tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)

        def replica_step(images: tf.Tensor, nrof_triplets: tf.Tensor) -> dict[str, tf.Tensor]:
            """Sums over this replica's triplets; the loss is its share of the global mean."""
            with tf.GradientTape() as tape:
                prelogits = tf.cast(model(images, training=True), tf.float32)
                embeddings = tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)
                pos, neg = triplet_distances(*split_triplets(embeddings))
                per_triplet = tf.maximum(pos - neg + alpha, 0.0)
                loss = tf.reduce_sum(per_triplet) / nrof_triplets
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
            return {
                "loss": total,
                "triplet_loss": loss,
                "active_fraction": tf.reduce_sum(tf.cast(per_triplet > 0.0, tf.float32)),
                "pos_dist": tf.reduce_sum(pos),
                "neg_dist": tf.reduce_sum(neg),
            }

        update_average = self.average_updater(decay)

        def finish(sums: dict[str, tf.Tensor], nrof_triplets: tf.Tensor) -> dict[str, tf.Tensor]:
            out = {
                "loss": sums["loss"],
                "triplet_loss": sums["triplet_loss"],
                "active_fraction": sums["active_fraction"] / nrof_triplets,
                "pos_dist": sums["pos_dist"] / nrof_triplets,
                "neg_dist": sums["neg_dist"] / nrof_triplets,
            }
            if self.mixed_precision:
                scale = optimizer.scale_loss(1.0) if loss_scaling else 1.0
                out["loss_scale"] = tf.cast(scale, tf.float32)
            return out

        if not self.distributed:
            # autograph=False: no data-dependent Python control flow here to convert.
            @tf.function(input_signature=[spec], reduce_retracing=True, autograph=False)
            def embed(images: tf.Tensor) -> tf.Tensor:
                return embed_body(images)

            def step_body(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
                nrof_triplets = tf.cast(tf.shape(images)[0] // 3, tf.float32)
                sums = replica_step(images, nrof_triplets)
                update_average(step)
                return finish(sums, nrof_triplets)

            @tf.function(input_signature=[spec, step_spec], autograph=False)
            def train_step(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
                return step_body(images, step)

            @tf.function(
                input_signature=[spec, tf.TensorSpec((None,), tf.int64), step_spec],
                autograph=False,
            )
            def train_rows(cache: tf.Tensor, rows: tf.Tensor, step: tf.Tensor) -> dict[str, Any]:
                # Rows of a round's images already decoded for its selection, gathered on
                # the device.
                return step_body(tf.gather(cache, rows), step)

            self.embed = embed
            self.train_step = train_step
            self.train_rows = train_rows
            return

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
            return finish(sums, nrof_triplets)

        def embed_distributed(images: tf.Tensor) -> tf.Tensor:
            bounds = distribute.split_bounds(int(images.shape[0]), nrof_replicas)
            gathered = embed_replicas(self._distribute(images, bounds))
            return strategy.experimental_local_results(gathered)[0]

        def train_distributed(images: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
            nrof_rows = int(images.shape[0])
            bounds = distribute.split_bounds(nrof_rows, nrof_replicas, unit=3)
            nrof_triplets = tf.constant(nrof_rows // 3, tf.float32)
            return step_replicas(self._distribute(images, bounds), nrof_triplets, step)

        def train_rows_distributed(cache: tf.Tensor, rows: tf.Tensor,
                                   step: tf.Tensor) -> dict[str, tf.Tensor]:  # fmt: skip
            return train_distributed(tf.gather(cache, rows), step)

        self.embed = embed_distributed
        self.train_step = train_distributed
        self.train_rows = train_rows_distributed

    def average_updater(self, decay: float) -> Any:
        """``update(step)``: move the moving-average model towards the trained one."""
        import tensorflow as tf

        strategy = self.strategy
        trainable = self.model.trainable_variables
        averaged = list(zip(self.ema_model.trainable_variables, trainable, strict=True))
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

    def _distribute(self, images: Any, bounds: np.ndarray) -> Any:
        """Replica ``r`` (global id) gets rows ``bounds[r]:bounds[r + 1]`` of the global batch."""

        def part(context: Any) -> Any:
            r = int(context.replica_id_in_sync_group)
            return images[int(bounds[r]) : int(bounds[r + 1])]

        return self.strategy.experimental_distribute_values_from_function(part)

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


def set_seeds(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def standardization(config: TrainConfig) -> str:
    return "fixed" if config.use_fixed_image_standardization else "per_image"


def find_unreadable(paths: list[str]) -> list[str]:
    """The paths TensorFlow's decoder cannot read (checked one by one; used after an error)."""
    import tensorflow as tf

    from facenet_cli.data.pipeline import decode_image

    bad = []
    for path in dict.fromkeys(paths):
        try:
            decode_image(tf.constant(path))
        except (tf.errors.OpError, ValueError):
            bad.append(path)
    return bad


# ------------------------------------------------------------------------------------ the loop


class _SigintFlag:
    """First Ctrl-C asks the loop to save and stop; a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _SigintFlag:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C stays the default
            self._previous = None
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


class Trainer:
    """State and steps of one run; ``run_train`` drives it."""

    def __init__(self, config: TrainConfig, reporter: Reporter) -> None:
        self.config = config
        self.reporter = reporter
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
        self._eval_embed: Any = None
        self.scratch_dir: Path | None = None

    # -- set-up -------------------------------------------------------------------------------

    def load_classes(self) -> list[ImageClass]:
        return load_training_classes(self.config, self.reporter)

    def make_graph(self) -> TrainingGraph:
        return TrainingGraph(self.config, self.info, self.strategy)

    def check_batch(self) -> None:
        from facenet_cli.train import distribute

        distribute.check_global_batch(self.config.batch_size, self.nrof_replicas)

    def setup(self) -> None:
        from facenet_cli.models.sidecar import ModelInfo, write_model_info
        from facenet_cli.train import distribute

        config = self.config
        configure_devices(config)
        # Multi-worker collectives are set up when the strategy is created, before any op runs.
        self.task = distribute.task_info(config.strategy)
        self.strategy = distribute.create_strategy(config.strategy)
        self.nrof_replicas = int(self.strategy.num_replicas_in_sync)
        self.check_batch()
        if self.nrof_replicas > 1 or self.task.nrof_workers > 1:
            self.reporter.message(
                f"{config.strategy} strategy: {self.nrof_replicas} replicas on "
                f"{self.task.nrof_workers} worker(s), "
                f"{config.batch_size // self.nrof_replicas} images per replica"
            )
        set_seeds(config.seed)
        assert config.model_def is not None
        self.info = ModelInfo(
            model_def=config.model_def,
            embedding_size=config.embedding_size,
            image_size=config.image_size,
            standardization=standardization(config),
            keep_probability=config.keep_probability,
            weight_decay=config.weight_decay,
        )
        self.graph = self.make_graph()
        rng = np.random.default_rng(config.seed)
        restore_dir = None
        if not self.task.is_chief:
            # Another worker's writes go to a scratch directory removed at the end (TensorFlow's
            # multi-worker recipe: every worker saves, only the chief where it is kept); it
            # resumes from the chief's checkpoints.
            self.scratch_dir = distribute.worker_dir(self.task)
            self.run_name = Path(config.resume).name if config.resume else self.scratch_dir.name
            self.model_dir = self.scratch_dir / "model"
            self.log_dir = self.scratch_dir / "logs"
            self.model_dir.mkdir()
            self.log_dir.mkdir()
            restore_dir = Path(config.resume) if config.resume is not None else None
        elif config.resume is not None:
            self.model_dir = Path(config.resume)
            self.run_name = self.model_dir.name
            self.log_dir = Path(config.logs_base_dir).expanduser() / self.run_name
            self.log_dir.mkdir(parents=True, exist_ok=True)
        else:
            self.run_name, self.log_dir, self.model_dir = ckpt.create_run_dirs(
                config.logs_base_dir, config.models_base_dir
            )
            ckpt.write_config(self.model_dir, config)
            write_model_info(self.model_dir, self.info)
        (self.model_dir / ckpt.REVISION_NAME).write_text(ckpt.revision_text())
        ckpt.clear_markers(self.log_dir)
        self.state = ckpt.TrainingState(
            self.graph.model, self.graph.ema_model, self.graph.optimizer, self.model_dir,
            config.keep_checkpoints, rng, restore_dir=restore_dir,
            extras=self.graph.checkpoint_extras(),
        )  # fmt: skip
        self.resumed_from = (
            self.state.restore_latest(self.reporter.warning) if config.resume is not None else None
        )
        self.saved_step = self.step if self.resumed_from is not None else -1
        if config.resume is None and config.pretrained_model is not None:
            self._load_pretrained(Path(config.pretrained_model))
        from facenet_cli.train.summaries import Summaries

        self.summaries = Summaries(self.log_dir)
        self.make_feeder()

    def _load_pretrained(self, path: Path) -> None:
        """Start from another model's weights (a run, checkpoint, export or ``.keras`` file)."""
        from facenet_cli.models.loading import load_embedding_model

        loaded = load_embedding_model(path)
        if loaded.keras_model is None:
            raise InputError(f"{path}: a bare SavedModel holds no Keras weights to start from")
        try:
            self.graph.model.set_weights(loaded.keras_model.get_weights())
        except ValueError as exc:
            raise InputError(
                f"{path}: its {loaded.info.model_def} weights do not fit "
                f"{self.config.model_def} at embedding size {self.config.embedding_size} ({exc})"
            ) from None
        self.graph.ema_model.set_weights(self.graph.model.get_weights())
        self.reporter.message(f"weights restored from {loaded.source}")

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

    def make_feeder(self) -> None:
        from facenet_cli.train.feeder import BatchFeeder

        config = self.config
        self.feeder = BatchFeeder(
            config.image_size, random_crop=config.random_crop, random_flip=config.random_flip,
            standardization=standardization(config), random_rotate=config.random_rotate,
            random_color=config.random_color,
        )  # fmt: skip

    def embed_round(self, paths: list[str]) -> tuple[np.ndarray, Any] | None:
        """Embeddings of the sampled images, and the decoded images when they can be reused.

        Without random crop or flip a triplet row is exactly the image embedded for selection,
        so the round's images are decoded once and kept on the device (the original decoded
        every row again: each image appears in dozens of triplets). Returns None when an
        unreadable image was found (it is dropped and the round resampled).
        """
        import tensorflow as tf

        config = self.config
        reuse = not (config.random_crop or config.random_flip or config.random_rotate
                     or config.random_color)  # fmt: skip
        nrof_batches = self.feeder.put(paths, self.config.batch_size, self.state.rng)
        parts = []
        kept = []
        try:
            for _ in range(nrof_batches):
                batch = self.feeder.get()
                if reuse:
                    with tf.device(self.graph.device):
                        batch = tf.identity(batch)
                    kept.append(batch)
                parts.append(self.graph.embed(batch))
            embeddings = np.concatenate([p.numpy() for p in parts], axis=0)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError):
            bad = find_unreadable(paths)
            if not bad:
                raise
            # The pipeline stops at its first error: start a fresh one.
            self.feeder.close()
            self.make_feeder()
            self._drop_images(bad)
            return None
        cache = None
        if reuse:
            with tf.device(self.graph.device):
                cache = tf.concat(kept, axis=0)
        return embeddings, cache

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
        last = config.max_nrof_epochs * config.epoch_size
        return min(last, config.max_steps) if config.max_steps is not None else last

    def run(self, sigint: _SigintFlag) -> str:
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
            if epoch >= config.max_nrof_epochs:
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
                    raise FacenetError(
                        f"no triplets in {MAX_EMPTY_ROUNDS} selection rounds in a row: "
                        "every negative is beyond the margin (try a larger --alpha)"
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
        self.state.save()
        self.saved_step = self.step
        self.last_save = time.monotonic()
        self.summaries.scalars({events.TIME_SAVE_VARIABLES: time.perf_counter() - start},
                               self.step)  # fmt: skip
        self.summaries.flush()

    def train_round(self, lr: float, sigint: _SigintFlag) -> int:
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
            nrof_batches = self.feeder.put([paths[i] for i in rows], config.batch_size,
                                           self.state.rng)  # fmt: skip
        pending: tuple[int, dict[str, Any], float, float, int] | None = None
        trained = 0
        trained_images = 0
        for batch in range(nrof_batches):
            wait_start = time.perf_counter()
            if cache is None:
                images = self.feeder.get()
                nrof_images = int(images.shape[0])
            else:
                batch_rows = rows[batch * config.batch_size : (batch + 1) * config.batch_size]
                nrof_images = len(batch_rows)
            data_wait = time.perf_counter() - wait_start
            step_start = time.perf_counter()
            step_tensor = tf.constant(self.step, tf.int64)
            if cache is None:
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
                    triplets: int) -> None:  # fmt: skip
        values = {k: float(v.numpy()) for k, v in outputs.items()}
        duration = time.perf_counter() - step_start
        loss = values["loss"]
        self.check_loss(loss, step)
        speed = nrof_images / max(duration, 1e-9)
        self.summaries.scalars(
            {
                events.LOSS: loss,
                events.LEARNING_RATE: lr,
                events.TRIPLETS_ACTIVE_FRACTION: values["active_fraction"],
                events.TRIPLETS_POS_DIST: values["pos_dist"],
                events.TRIPLETS_NEG_DIST: values["neg_dist"],
                events.TIME_STEP: duration,
                events.TIME_DATA_WAIT: data_wait,
                events.IMAGES_PER_SEC: speed,
                **({events.LOSS_SCALE: values["loss_scale"]} if "loss_scale" in values else {}),
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

    def check_loss(self, loss: float, step: int) -> None:
        """The NaN guard: stop on a NaN or infinite loss, naming the last good checkpoint."""
        if not math.isfinite(loss):
            last = ckpt.latest_checkpoint(self.model_dir)
            kept = f"; the last good checkpoint is {last}" if last else ""
            raise TrainingDiverged(f"loss became {loss} at step {step}{kept}")

    # -- evaluation and export ----------------------------------------------------------------

    def evaluate(self) -> None:
        """Evaluate the moving-average model on the pairs (inference mode, centre crops)."""
        config = self.config
        if config.lfw_dir is None or config.lfw_pairs is None or not self.task.is_chief:
            return
        from facenet_cli.evaluate.validate import evaluate_on_pairs
        from facenet_cli.models.loading import embedding_fn

        if self._eval_embed is None:
            self._eval_embed = embedding_fn(self.graph.ema_model, self.info,
                                            batch_size=config.lfw_batch_size)  # fmt: skip
        start = time.perf_counter()
        report = evaluate_on_pairs(
            self._eval_embed,
            config.lfw_dir,
            config.lfw_pairs,
            image_size=config.image_size,
            batch_size=config.lfw_batch_size,
            use_flipped_images=config.lfw_use_flipped_images,
            distance_metric=config.lfw_distance_metric,
            subtract_mean=config.lfw_subtract_mean,
            nrof_folds=config.lfw_nrof_folds,
        )
        elapsed = time.perf_counter() - start
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
            from facenet_cli.models.registry import create_model

            config = self.config
            assert config.model_def is not None
            model = create_model(config.model_def, config.embedding_size, config.image_size,
                                 keep_probability=config.keep_probability,
                                 weight_decay=config.weight_decay)  # fmt: skip
            model.set_weights(self.graph.ema_model.get_weights())
        return Path(export_model(model, self.info, out))


def report_metrics(report: Any) -> dict[str, float]:
    """The scalar figures of a ``ValidationReport`` under the ``lfw/*`` tags.

    VAL and FAR are left out when no fold reaches the FAR target (they would be NaN).
    """
    result = report.result
    accuracy = np.asarray(result.accuracy, dtype=np.float64)
    values = {
        events.LFW_ACCURACY: float(np.mean(accuracy)),
        events.LFW_ACCURACY_STD: float(np.std(accuracy)),
        events.LFW_AUC: float(result.auc),
        events.LFW_EER: float(result.eer),
    }
    for tag, data in ((events.LFW_VAL_RATE, result.val), (events.LFW_FAR, result.far)):
        data = np.asarray(data, dtype=np.float64)
        if np.any(np.isfinite(data)):
            values[tag] = float(np.nanmean(data))
    return {k: v for k, v in values.items() if math.isfinite(v)}


def trainer_class(config: TrainConfig) -> type[Trainer]:
    """The trainer of ``--loss``: triplet selection rounds, or classifier epochs."""
    if config.loss == "triplet":
        return Trainer
    from facenet_cli.train.classifier import ClassifierTrainer

    return ClassifierTrainer


def run_train(config: TrainConfig, reporter: Reporter | None = None) -> RunResult:
    """Run ``facenet train``: resolve the config, train, evaluate, checkpoint and export.

    Args:
        config: the command's settings (``--resume`` continues the named run).
        reporter: progress and messages; Rich bars on a terminal when None.

    Returns:
        The run's name, directories, final step and epoch, last pairs accuracy, export folder.

    Raises:
        InputError: bad settings or data (before training starts where possible).
        TrainingDiverged: the loss became NaN or infinite (the last good checkpoint is kept).
        TrainingInterrupted: Ctrl-C; a checkpoint was saved and the message says how to resume.
    """
    reporter = reporter if reporter is not None else ConsoleReporter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    trainer: Trainer | None = None
    try:
        if config.resume is None:
            check_config(config)
        config = resolve_config(config, reporter)
        check_config(config)
        check_paths(config)
        trainer = trainer_class(config)(config, reporter)
        trainer.setup()
        reporter.start(
            run_name=trainer.run_name, log_dir=str(trainer.log_dir),
            model_dir=str(trainer.model_dir), step=trainer.step, epoch=trainer.epoch,
            epoch_size=config.epoch_size, max_epochs=config.max_nrof_epochs,
            resumed=trainer.resumed_from is not None,
        )  # fmt: skip
        with _SigintFlag() as sigint:
            reason = trainer.run(sigint)
            if reason == "interrupted":
                trainer.save()
                raise TrainingInterrupted(
                    f"interrupted at step {trainer.step}; checkpoint saved in "
                    f"{trainer.model_dir}; resume with: facenet train --resume "
                    f"{trainer.model_dir}"
                )
        if trainer.step % config.epoch_size == 0 and trainer.step > 0 and \
                trainer.epoch < trainer.step // config.epoch_size:  # fmt: skip
            trainer.end_epoch()  # the last epoch ended exactly at the stop
        else:
            trainer.save()
        export_dir = trainer.export()
        result = RunResult(
            run_name=trainer.run_name, run_dir=trainer.model_dir, log_dir=trainer.log_dir,
            step=trainer.step, epoch=trainer.epoch, lfw_accuracy=trainer.last_lfw,
            export_dir=export_dir, stop_reason=reason,
        )  # fmt: skip
        ckpt.write_marker(trainer.log_dir, ckpt.FINISHED, f"{reason} at step {trainer.step}")
        reporter.message(f"finished at step {trainer.step} ({reason}); model in {export_dir}")
        return result
    except BaseException as exc:
        if trainer is not None and hasattr(trainer, "log_dir"):
            reason = str(exc) if isinstance(exc, FacenetError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, KeyboardInterrupt):
                reason = "interrupted"
            ckpt.write_marker(trainer.log_dir, ckpt.FAILED, reason)
        raise
    finally:
        reporter.close()
        if trainer is not None and hasattr(trainer, "summaries"):
            trainer.summaries.close()
        if trainer is not None and hasattr(trainer, "feeder"):
            trainer.feeder.close()
        if trainer is not None and trainer.scratch_dir is not None:
            from facenet_cli.train.distribute import cleanup

            cleanup(trainer.scratch_dir)
