"""``facenet train``: resolve and check the settings, then drive the ``Trainer`` to the end.

The first Ctrl-C asks the loop to save a checkpoint and stop; the error it ends with says how to
resume. A run that fails leaves a FAILED marker in its log folder, one that ends a FINISHED one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facenet_cli.config import TrainConfig
from facenet_cli.errors import EXIT_INTERRUPTED, FacenetError
from facenet_cli.train import checkpoints as ckpt
from facenet_cli.train.interrupt import SigintFlag
from facenet_cli.train.reporting import ConsoleReporter, Reporter
from facenet_cli.train.settings import check_config, check_paths, resolve_config
from facenet_cli.train.trainer import Trainer


class TrainingInterrupted(FacenetError):
    """Ctrl-C: a checkpoint was saved; the message says how to resume."""

    exit_code = EXIT_INTERRUPTED


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
    try:
        if config.resume is None:
            check_config(config)
        config = resolve_config(config)
        check_config(config)
        check_paths(config)
        with Trainer(config, reporter) as trainer:
            return _train(trainer)
    finally:
        reporter.close()


def _train(trainer: Trainer) -> RunResult:
    config = trainer.config
    trainer.reporter.start(
        run_name=trainer.run_name, log_dir=str(trainer.log_dir),
        model_dir=str(trainer.model_dir), step=trainer.step, epoch=trainer.epoch,
        epoch_size=config.epoch_size, max_epochs=trainer.max_nrof_epochs,
        resumed=trainer.resumed_from is not None,
    )  # fmt: skip
    with SigintFlag() as sigint:
        reason = trainer.run(sigint)
        if trainer.graph.decodes_share:
            trainer.reporter.message(
                f"worker {trainer.task.task_id}: decoded {trainer.decoded} of the "
                f"{trainer.batched} images of its rounds' global batches (its replicas' share)"
            )
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
    trainer.reporter.message(f"finished at step {trainer.step} ({reason}); model in {export_dir}")
    return result
