"""Run directories and full-state checkpoints of a training run.

Layout (as the original names runs): ``<logs_base_dir>/<yyyymmdd-hhmmss>/`` for event files
and ``<models_base_dir>/<same name>/`` for ``model.json``, ``config.toml``, ``revision.txt`` and
the checkpoints ``ckpt-<global step>`` (the last N kept). A checkpoint holds the model, its
moving average (``ema_model``), the optimizer, the global step, the epoch and the sampler's
random state, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.config import TrainConfig, to_toml_dict
from facenet_cli.errors import FacenetError, InputError, StorageError

CONFIG_NAME = "config.toml"
REVISION_NAME = "revision.txt"
CHECKPOINT_NAME = "ckpt"
FINISHED = "FINISHED"
FAILED = "FAILED"


# ----------------------------------------------------------------------------- run directories


def new_run_name(now: _dt.datetime | None = None) -> str:
    """The original's run name: local time as ``yyyymmdd-hhmmss``."""
    return (now or _dt.datetime.now()).strftime("%Y%m%d-%H%M%S")


def create_run_dirs(logs_base_dir: Path, models_base_dir: Path) -> tuple[str, Path, Path]:
    """Create ``<logs>/<run>`` and ``<models>/<run>``; a ``-2``, ``-3``... suffix avoids clashes.

    Returns:
        ``(run_name, log_dir, model_dir)``.
    """
    base = new_run_name()
    for attempt in range(1, 1000):
        name = base if attempt == 1 else f"{base}-{attempt}"
        log_dir = Path(logs_base_dir).expanduser() / name
        model_dir = Path(models_base_dir).expanduser() / name
        if log_dir.exists() or model_dir.exists():
            continue
        try:
            model_dir.mkdir(parents=True)
        except OSError as exc:
            raise StorageError(
                f"{model_dir}: cannot create the run folder ({exc.strerror})"
            ) from None
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            model_dir.rmdir()  # no empty run folder left behind by a blocked logs folder
            raise StorageError(
                f"{log_dir}: cannot create the run's log folder ({exc.strerror})"
            ) from None
        return name, log_dir, model_dir
    raise InputError(f"{models_base_dir}: cannot create a new run directory")


def resolve_run_dir(spec: Path, models_base_dir: Path) -> Path:
    """The model directory of ``--resume RUN``: a run directory, or a run name under the base.

    A log directory of the run also works (its name is looked up under ``models_base_dir``).

    A run stopped before its first checkpoint has none: it is trained again from step 0 in the
    same folders.

    Raises:
        InputError: no such run.
    """
    spec = Path(spec).expanduser()
    candidates = [spec, Path(models_base_dir).expanduser() / spec.name]
    for candidate in candidates:
        if (candidate / CONFIG_NAME).is_file():
            return candidate
    raise InputError(
        f"{spec}: no training run found (looked for {CONFIG_NAME} in "
        f"{' and '.join(str(c) for c in candidates)})"
    )


def revision_text() -> str:
    """Versions of Python and the main libraries, the git revision and the command line."""
    import keras
    import tensorflow as tf

    from facenet_cli import __version__

    lines = [
        f"facenet {__version__}",
        f"python {platform.python_version()}",
        f"tensorflow {tf.__version__}",
        f"keras {keras.__version__}",
        f"numpy {np.__version__}",
        f"git {git_revision() or 'unknown'}",
        "command " + " ".join(sys.argv),
    ]
    return "\n".join(lines) + "\n"


def git_revision() -> str | None:
    """The package checkout's ``git rev-parse HEAD`` (with ``-dirty``), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = _git(["rev-parse", "HEAD"], here)
        dirty = _git(["status", "--porcelain", "--untracked-files=no"], here)
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("-dirty" if dirty else "")


def _git(args: list[str], cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=5,
                          check=True)  # fmt: skip
    return done.stdout.strip()


def write_config(model_dir: Path, config: TrainConfig) -> Path:
    """Save the fully resolved config as TOML (readable back with ``read_config``)."""
    import tomli_w

    path = Path(model_dir) / CONFIG_NAME
    path.write_text(tomli_w.dumps(to_toml_dict(config)))
    return path


def read_config(model_dir: Path) -> TrainConfig:
    """The ``TrainConfig`` a run was started with.

    Raises:
        InputError: the file is missing or malformed.
    """
    path = Path(model_dir) / CONFIG_NAME
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputError(f"{path}: cannot read the run's config ({exc})") from None
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(TrainConfig):
        if f.name not in data:
            continue
        value = data[f.name]
        if "Path" in str(f.type) and value is not None:
            value = Path(value)
        kwargs[f.name] = value
    try:
        return TrainConfig(**kwargs)
    except TypeError as exc:
        raise InputError(f"{path}: {exc}") from None


def write_marker(log_dir: Path, name: str, reason: str = "") -> None:
    """Write ``FINISHED`` or ``FAILED`` (one line: the reason) for the dashboard.

    Best effort: on a full disk the marker cannot be written, and the error that stopped the run
    (which names where it was writing) must reach the user rather than this one.
    """
    try:
        clear_markers(log_dir)
        (Path(log_dir) / name).write_text(" ".join(reason.split()) + "\n")
    except OSError:
        pass


def clear_markers(log_dir: Path) -> None:
    for name in (FINISHED, FAILED):
        (Path(log_dir) / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------------- checkpoints


def latest_checkpoint(model_dir: Path) -> str | None:
    """Prefix of the newest checkpoint in ``model_dir`` (``.../ckpt-<step>``), or None."""
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(model_dir))


def encode_rng_state(rng: np.random.Generator) -> str:
    """A numpy generator's state as JSON (its 128-bit integers as decimal strings)."""
    state = rng.bit_generator.state

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, int) and not isinstance(value, bool):
            return {"int": str(value)}
        return value

    return json.dumps(clean(state))


def decode_rng_state(text: str) -> np.random.Generator:
    """Inverse of ``encode_rng_state``."""

    def restore(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"int"}:
                return int(value["int"])
            return {k: restore(v) for k, v in value.items()}
        return value

    state = restore(json.loads(text))
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


class TrainingState:
    """Everything a checkpoint holds, with the ``tf.train.CheckpointManager`` that saves it."""

    def __init__(self, model: Any, ema_model: Any, optimizer: Any, model_dir: Path,
                 max_to_keep: int, rng: np.random.Generator,
                 restore_dir: Path | None = None,
                 extras: dict[str, Any] | None = None) -> None:  # fmt: skip
        import tensorflow as tf

        # Host variables mirrored by Python ints: reading a device variable every step would
        # wait for the step in flight and leave the accelerator idle.
        with tf.device("/CPU:0"):
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.rng_state = tf.Variable(encode_rng_state(rng), dtype=tf.string, trainable=False)
        self.current_step = 0
        self.current_epoch = 0
        self.rng = rng
        self.checkpoint = tf.train.Checkpoint(
            model=model, ema_model=ema_model, optimizer=optimizer, step=self.step,
            epoch=self.epoch, rng_state=self.rng_state, **(extras or {}),
        )  # fmt: skip
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, directory=str(model_dir), max_to_keep=max_to_keep,
            checkpoint_name=CHECKPOINT_NAME,
        )  # fmt: skip
        # A non-chief worker saves into its scratch directory but resumes from the chief's.
        self.restore_manager = (
            self.manager
            if restore_dir is None
            else tf.train.CheckpointManager(
                self.checkpoint,
                directory=str(restore_dir),
                max_to_keep=max_to_keep,
                checkpoint_name=CHECKPOINT_NAME,
            )
        )

    def set_step(self, step: int) -> None:
        self.current_step = step
        self.step.assign(step)

    def set_epoch(self, epoch: int) -> None:
        self.current_epoch = epoch
        self.epoch.assign(epoch)

    def save(self) -> str:
        """Save at the current global step (the checkpoint is labelled with it)."""
        import tensorflow as tf

        from facenet_cli.errors import StorageError

        self.rng_state.assign(encode_rng_state(self.rng))
        try:
            return self.manager.save(checkpoint_number=int(self.step.numpy()))
        except (tf.errors.ResourceExhaustedError, tf.errors.UnknownError, OSError) as exc:
            detail = getattr(exc, "message", None) or str(exc)
            if "No space left" in detail:
                detail = "No space left on device"
            raise StorageError(
                f"{self.manager.directory}: cannot write checkpoint "
                f"ckpt-{int(self.step.numpy())} ({' '.join(detail.split())[:200]})"
            ) from exc

    def restore_latest(self, warn: Any = None) -> str | None:
        """Restore the newest readable checkpoint (all of it); returns its prefix, or None.

        A damaged newest checkpoint (a run killed while writing it, a truncated copy) is
        skipped for the one before it; ``warn(message)`` is told which and why.
        """
        import tensorflow as tf

        for path in reversed(self.restore_manager.checkpoints):
            try:
                self.checkpoint.restore(path).assert_existing_objects_matched()
            # A truncated file fails in TensorFlow's reader (OpError) or in its Python
            # wrappers (IndexError "Read less bytes than requested", ValueError).
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, KeyError) as exc:
                reason = " ".join(str(getattr(exc, "message", exc)).split())[:160]
                if warn is not None:
                    warn(f"{path}: damaged checkpoint skipped ({reason})")
                continue
            self.rng = decode_rng_state(self.rng_state.numpy().decode())
            self.current_step = int(self.step.numpy())
            self.current_epoch = int(self.epoch.numpy())
            return path
        if self.restore_manager.checkpoints:
            raise InputError(
                f"{self.restore_manager.directory}: no readable checkpoint to resume from"
            )
        return None


# ------------------------------------------------------------------------------ opening a run


@dataclasses.dataclass(frozen=True)
class RunDirs:
    """Where a run writes: its name, event files, checkpoints; a worker's scratch folder."""

    name: str
    log_dir: Path
    model_dir: Path
    scratch_dir: Path | None = None  # a non-chief worker's, removed at the end
    restore_dir: Path | None = None  # where a non-chief worker resumes from


def open_run_dirs(config: TrainConfig, task: Any, info: Any) -> RunDirs:
    """Create (or, for ``--resume``, reopen) the run's folders; a new run gets its config."""
    from facenet_cli.models.sidecar import write_model_info
    from facenet_cli.train import distribute

    resume = Path(config.resume) if config.resume is not None else None
    if not task.is_chief:
        # Another worker's writes go to a scratch directory removed at the end (TensorFlow's
        # multi-worker recipe: every worker saves, only the chief where it is kept); it
        # resumes from the chief's checkpoints.
        scratch = distribute.worker_dir(task)
        dirs = RunDirs(resume.name if resume else scratch.name, scratch / "logs",
                       scratch / "model", scratch, resume)  # fmt: skip
        dirs.model_dir.mkdir()
        dirs.log_dir.mkdir()
    elif resume is not None:
        dirs = RunDirs(resume.name, Path(config.logs_base_dir).expanduser() / resume.name, resume)
        dirs.log_dir.mkdir(parents=True, exist_ok=True)
    else:
        name, log_dir, model_dir = create_run_dirs(config.logs_base_dir,
                                                        config.models_base_dir)  # fmt: skip
        dirs = RunDirs(name, log_dir, model_dir)
        write_config(model_dir, config)
        write_model_info(model_dir, info)
    (dirs.model_dir / REVISION_NAME).write_text(revision_text())
    clear_markers(dirs.log_dir)
    return dirs


def failure_reason(exc: BaseException) -> str:
    """The line a FAILED marker holds for ``exc``."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return str(exc) if isinstance(exc, FacenetError) else f"{type(exc).__name__}: {exc}"
