"""What a training objective supplies to the one ``Trainer`` (``trainer.py``).

An objective says what a batch is, what a step computes, which tags its step outputs are logged
under and what it checkpoints besides the model; the trainer owns everything else once: the
loop, feeding, unreadable images, checkpoints, resume, the moving average, evaluation, events,
Ctrl-C and distribution. The objectives are the rows of ``facenet_cli.train.registry``.

The trainer hands each objective a ``TrainingRun`` (what it may use of the run) and asks it for
an iterator of ``Batch``es up to a step; a batch's ``run`` performs one training step.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from facenet_cli.config import TrainConfig

if TYPE_CHECKING:
    from facenet_cli.data.dataset import ImageClass
    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.train.checkpoints import TrainingState
    from facenet_cli.train.graph import TrainingGraph
    from facenet_cli.train.reporting import Reporter
    from facenet_cli.train.summaries import Summaries


@dataclass
class Batch:
    """One training step's input: ``run(step)`` trains on it and returns the step's outputs
    (scalar tensors: ``loss`` and the objective's ``STEP_TAGS`` keys)."""

    run: Callable[[Any], dict[str, Any]]
    nrof_images: int
    triplets: int | None = None


@dataclass(frozen=True)
class RoundStats:
    """What the last call of ``Objective.batches`` did (for summaries and the pipeline
    benchmark): images embedded for selection, triplets and pairs found, steps and images
    trained, and the time spent before the first step."""

    embedded: int = 0
    triplets: int = 0
    pairs: int = 0
    steps: int = 0
    trained_images: int = 0
    selection_s: float = 0.0


@dataclass
class DataSummary:
    """What a run found in its data: its identities and images, and what was left out and why
    (reported when the run starts)."""

    identities: int
    images: int
    left_out: list[str] = field(default_factory=list)

    def text(self, data_dir: str | None) -> str:
        found = f"{data_dir}: {self.identities} identities, {self.images} images"
        return found + (f"; left out: {'; '.join(self.left_out)}" if self.left_out else "")


class TrainingRun(Protocol):
    """What an objective may use of the run it trains in (the ``Trainer``)."""

    config: TrainConfig
    reporter: Reporter
    graph: TrainingGraph
    state: TrainingState
    summaries: Summaries
    info: ModelInfo
    model_dir: Path
    last_round: RoundStats

    @property
    def step(self) -> int: ...

    @property
    def epoch(self) -> int: ...

    def feed(self, batches: Sequence[Sequence[str]], rng: np.random.Generator) -> int: ...

    def take(self) -> Any: ...

    def worker_batches(self, paths: list[str],
                       unit: int) -> list[tuple[int, int, list[str]]]: ...  # fmt: skip

    def drop_unreadable(self, paths: Sequence[str]) -> None: ...


class Objective:
    """The base of every objective; the methods below are its part of a run.

    Args:
        config: the run's resolved settings.
        reporter: where warnings go.
    """

    NAME = ""
    # The step's own outputs and the tags they are logged under (besides the loss).
    STEP_TAGS: dict[str, str] = {}
    # Whether the objective's step may be compiled with XLA (``--xla``).
    SUPPORTS_XLA = False

    def __init__(self, config: TrainConfig, reporter: Reporter) -> None:
        self.config = config
        self.reporter = reporter
        self.classes: list[ImageClass] = []
        self.found = DataSummary(0, 0)

    @classmethod
    def check_config(cls, config: TrainConfig) -> None:
        """Refuse settings this objective cannot train with (before any data is read)."""

    def load_classes(self) -> list[ImageClass]:
        """The classes to train on; fills ``self.found``."""
        raise NotImplementedError

    def check_batch(self, batch_size: int, nrof_replicas: int) -> None:
        """Refuse a global batch that cannot be split between the replicas."""

    def build(self, graph: TrainingGraph) -> None:
        """Build what the objective trains besides the model (under the strategy's scope)."""

    def trainable_variables(self) -> list[Any]:
        """The variables the optimizer updates besides the model's."""
        return []

    def checkpoint_extras(self) -> dict[str, Any]:
        """Objects a checkpoint holds besides the models and the optimizer."""
        return {}

    def compile(self, graph: TrainingGraph) -> None:
        """Compile the step functions (the model, its average and the optimizer are built)."""
        raise NotImplementedError

    def batches(self, run: TrainingRun, last_step: int) -> Generator[Batch, None, None]:
        """The batches of the steps from ``run.step`` up to ``last_step`` at most (a selection
        round may give fewer). Images come from ``run.feed`` / ``run.take``; a decoding failure
        there ends the iterator and the trainer drops the unreadable images."""
        raise NotImplementedError

    def drop_images(self, bad: set[str]) -> None:
        """Stop using the unreadable images ``bad``.

        Raises:
            InputError: too little readable data is left to train on.
        """
        raise NotImplementedError

    def nothing_trained(self, rounds: int) -> str:
        """Why ``rounds`` calls of ``batches`` in a row trained nothing (the run stops)."""
        return f"no training batches in {rounds} rounds in a row"

    def evaluate(self, run: TrainingRun, *, final: bool) -> None:
        """Evaluation of the objective's own, after the pairs evaluation of an epoch."""
