"""The ``facenet`` command line: thin Typer commands that parse, build a config and call run().

Heavy modules (TensorFlow, the detector, Textual) are imported inside each command so that
``facenet --help`` answers instantly and never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from facenet_cli import __version__
from facenet_cli.config import (
    AlignConfig,
    BoardConfig,
    DemoConfig,
    PairsConfig,
    TrainConfig,
    ValidateConfig,
    from_params,
)
from facenet_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_IO, FacenetError

_ALIGN = AlignConfig()
_TRAIN = TrainConfig()
_VALIDATE = ValidateConfig()
_BOARD = BoardConfig()
_DEMO = DemoConfig()

_debug = bool(os.environ.get("FACENET_DEBUG"))


def normalize_option_names(args: list[str]) -> list[str]:
    """Accept the original recipe's snake_case options: ``--image_size`` -> ``--image-size``.

    Only the option name is rewritten (``--lfw_dir=/x_y`` keeps its value); everything after a
    bare ``--`` is left alone.
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--") and "_" in arg:
            name, sep, value = arg.partition("=")
            arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class FacenetGroup(TyperGroup):
    """Typer group that accepts snake_case aliases and turns errors into one-line messages."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_option_names(list(args)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.TyperException, typer.Abort):
            raise
        except FacenetError as exc:
            _report(exc, _one_line(str(exc)))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _report(exc, "interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _report(exc, f"{where}{exc.strerror or exc}")
            ctx.exit(EXIT_IO)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for users
            if _DISK_FULL in str(exc):
                # TensorFlow's own writers (checkpoints, SavedModel) fail with an OpError, not
                # OSError; a full disk is still a write failure, and the path is in the message.
                _report(exc, _op_error_line(str(exc)))
                ctx.exit(EXIT_IO)
            _report(exc, f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")
            ctx.exit(EXIT_ERROR)


_DISK_FULL = "No space left on device"


def _op_error_line(text: str) -> str:
    """A TensorFlow OpError message without its ``{{function_node ...}}`` and ``[Op:X]`` parts."""
    text = re.sub(r"\{\{.*?\}\}\s*", "", text, flags=re.S)
    return _one_line(re.sub(r"\s*\[Op:\w+\]", "", text))


def _report(exc: BaseException, message: str) -> None:
    if _debug:
        traceback.print_exception(exc)
    hint = "" if _debug else " (--debug shows the traceback)"
    if isinstance(exc, FacenetError | KeyboardInterrupt):
        hint = ""
    typer.echo(f"error: {message}{hint}", err=True)


app = typer.Typer(
    name="facenet",
    cls=FacenetGroup,
    help=(
        "Face-recognition embeddings with triplet loss: align faces with MTCNN, train "
        "Inception-ResNet-v1, validate on LFW, and watch training live in the terminal.\n\n"
        "Every option also accepts the original recipe's snake_case spelling "
        "(--image_size works like --image-size). With no data arguments, each command works "
        "on the built-in demo faces."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"facenet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    global _debug
    _debug = _debug or debug


# --------------------------------------------------------------------------------------- align


@app.command()
def align(
    ctx: typer.Context,
    input_dir: Annotated[
        Path | None,
        typer.Argument(help="Dataset root: one sub-folder per identity. Default: the demo photos."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Argument(help="Where aligned crops go (same class folders). Default: demo cache."),
    ] = None,
    image_size: Annotated[int, typer.Option(min=8, help="Side of the square output crop, px.")] = (
        _ALIGN.image_size
    ),
    margin: Annotated[
        int, typer.Option(min=0, help="Margin around the box in ORIGINAL pixels (half per side).")
    ] = _ALIGN.margin,
    random_order: Annotated[
        bool, typer.Option(help="Process images in random order (the original's parallelism).")
    ] = _ALIGN.random_order,
    detect_multiple_faces: Annotated[
        bool,
        typer.Option(help="Write every face (<stem>_<i>.png) instead of the most central one."),
    ] = _ALIGN.detect_multiple_faces,
    min_face_size: Annotated[int, typer.Option(min=4, help="MTCNN minimum face size, px.")] = (
        _ALIGN.min_face_size
    ),
    thresholds: Annotated[
        tuple[float, float, float], typer.Option(help="P-Net, R-Net, O-Net score thresholds.")
    ] = _ALIGN.thresholds,
    factor: Annotated[
        float, typer.Option(min=0.1, max=0.99, help="Image pyramid scale factor.")
    ] = _ALIGN.factor,
    workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="Worker processes (0 = auto: one per 4 cores, one for small jobs; each uses "
            "its share of the cores for TensorFlow).",
        ),
    ] = _ALIGN.workers,
    shard: Annotated[
        str,
        typer.Option(
            help="I/N: process only shard I of N (0-based), a deterministic split of the inputs "
            "so N machines on shared storage can share one dataset."
        ),
    ] = _ALIGN.shard,
    gpu_memory_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Upper bound on GPU memory used (TF2: limit).")
    ] = _ALIGN.gpu_memory_fraction,
    mode: Annotated[
        str,
        typer.Option(
            help="crop: box + margin (the original); similarity: 5-landmark similarity warp "
            "to a canonical face template."
        ),
    ] = _ALIGN.mode,
    batch_size: Annotated[int, typer.Option(min=1, help="Images detected together.")] = (
        _ALIGN.batch_size
    ),
) -> None:
    """Detect faces with MTCNN and write aligned crops of a whole dataset (resumable)."""
    from facenet_cli.align.pipeline import run_align

    run_align(from_params(AlignConfig, ctx.params))


# --------------------------------------------------------------------------------------- train


def _load_config_file(
    ctx: typer.Context, _param: typer.CallbackParam, value: Path | None
) -> Path | None:
    """``--config FILE.toml``: any option from a file; the command line wins."""
    if value is None:
        return None
    from facenet_cli.data.config_file import read_config_file

    options = read_config_file(
        value,
        command=ctx.info_name or "train",
        known={p.name for p in ctx.command.params},
        schema=TrainConfig,
    )
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


_DATA = "Data"
_MODEL = "Model"
_OPT = "Optimisation"
_SEL = "Triplet selection"
_LFW = "LFW evaluation"
_CLS = "Classifier (--loss softmax/arcface/cosface)"
_RUN = "Run"


@app.command()
def train(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            is_eager=True,
            callback=_load_config_file,
            help="TOML file with any of these options (snake_case keys); the command line wins.",
            rich_help_panel=_RUN,
        ),
    ] = None,
    data_dir: Annotated[
        str | None,
        typer.Option(
            help="Aligned dataset root(s), joined with ':'. Default: demo faces.",
            rich_help_panel=_DATA,
        ),
    ] = None,
    logs_base_dir: Annotated[
        Path, typer.Option(help="Event files go to <this>/<run>/.", rich_help_panel=_RUN)
    ] = _TRAIN.logs_base_dir,
    models_base_dir: Annotated[
        Path, typer.Option(help="Checkpoints go to <this>/<run>/.", rich_help_panel=_RUN)
    ] = _TRAIN.models_base_dir,
    model_def: Annotated[
        str | None,
        typer.Option(
            help="Registered model (inception_resnet_v1, inception_resnet_v2, squeezenet, small, "
            "mobilefacenet; "
            "models.inception_resnet_v1 also works) or package.module:function. Default: "
            "inception_resnet_v1, or small on the demo faces.",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    max_nrof_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_RUN)] = (
        _TRAIN.max_nrof_epochs
    ),
    max_steps: Annotated[
        int | None, typer.Option(min=1, help="Stop after this global step.", rich_help_panel=_RUN)
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=3, help="Images per step; a multiple of 3.", rich_help_panel=_OPT)
    ] = _TRAIN.batch_size,
    image_size: Annotated[int, typer.Option(min=8, rich_help_panel=_DATA)] = _TRAIN.image_size,
    people_per_batch: Annotated[
        int,
        typer.Option(min=2, help="Identities sampled per selection round.", rich_help_panel=_SEL),
    ] = _TRAIN.people_per_batch,
    images_per_person: Annotated[
        int, typer.Option(min=2, help="Images sampled per identity.", rich_help_panel=_SEL)
    ] = _TRAIN.images_per_person,
    epoch_size: Annotated[
        int, typer.Option(min=1, help="Training steps per epoch.", rich_help_panel=_RUN)
    ] = _TRAIN.epoch_size,
    alpha: Annotated[float, typer.Option(min=0.0, help="Triplet margin.", rich_help_panel=_SEL)] = (
        _TRAIN.alpha
    ),
    embedding_size: Annotated[int, typer.Option(min=1, rich_help_panel=_MODEL)] = (
        _TRAIN.embedding_size
    ),
    random_crop: Annotated[bool, typer.Option(rich_help_panel=_DATA)] = _TRAIN.random_crop,
    random_flip: Annotated[bool, typer.Option(rich_help_panel=_DATA)] = _TRAIN.random_flip,
    use_fixed_image_standardization: Annotated[
        bool, typer.Option(help="(x - 127.5) / 128 instead of per-image.", rich_help_panel=_DATA)
    ] = _TRAIN.use_fixed_image_standardization,
    keep_probability: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Dropout keep probability.", rich_help_panel=_MODEL),
    ] = _TRAIN.keep_probability,
    weight_decay: Annotated[float, typer.Option(min=0.0, rich_help_panel=_MODEL)] = (
        _TRAIN.weight_decay
    ),
    optimizer: Annotated[
        str, typer.Option(help="ADAGRAD, ADADELTA, ADAM, RMSPROP or MOM.", rich_help_panel=_OPT)
    ] = _TRAIN.optimizer,
    learning_rate: Annotated[
        float,
        typer.Option(
            help="Initial rate; <= 0 uses --learning-rate-schedule-file.", rich_help_panel=_OPT
        ),
    ] = _TRAIN.learning_rate,
    learning_rate_decay_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_OPT)] = (
        _TRAIN.learning_rate_decay_epochs
    ),
    learning_rate_decay_factor: Annotated[float, typer.Option(rich_help_panel=_OPT)] = (
        _TRAIN.learning_rate_decay_factor
    ),
    learning_rate_schedule_file: Annotated[
        Path | None,
        typer.Option(help="Lines 'epoch: lr'; '-1' stops the run.", rich_help_panel=_OPT),
    ] = None,
    moving_average_decay: Annotated[float, typer.Option(rich_help_panel=_OPT)] = (
        _TRAIN.moving_average_decay
    ),
    triplet_selection: Annotated[
        str,
        typer.Option(help="random (the original's rule), semi-hard or hard.", rich_help_panel=_SEL),
    ] = _TRAIN.triplet_selection,
    selection_mode: Annotated[
        str,
        typer.Option(
            help="Embed for selection in inference (default) or training mode.",
            rich_help_panel=_SEL,
        ),
    ] = _TRAIN.selection_mode,
    seed: Annotated[int, typer.Option(rich_help_panel=_RUN)] = _TRAIN.seed,
    gpu_memory_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, rich_help_panel=_RUN)
    ] = _TRAIN.gpu_memory_fraction,
    pretrained_model: Annotated[
        Path | None, typer.Option(help="Checkpoint or model to start from.", rich_help_panel=_MODEL)
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Run directory (or name) to continue at its exact step.", rich_help_panel=_RUN
        ),
    ] = None,
    keep_checkpoints: Annotated[int, typer.Option(min=1, rich_help_panel=_RUN)] = (
        _TRAIN.keep_checkpoints
    ),
    lfw_dir: Annotated[
        Path | None, typer.Option(help="Aligned LFW (or pairs) images.", rich_help_panel=_LFW)
    ] = None,
    lfw_pairs: Annotated[Path | None, typer.Option(rich_help_panel=_LFW)] = None,
    lfw_nrof_folds: Annotated[int, typer.Option(min=2, rich_help_panel=_LFW)] = (
        _TRAIN.lfw_nrof_folds
    ),
    lfw_distance_metric: Annotated[
        int,
        typer.Option(min=0, max=1, help="0 squared Euclidean, 1 angular.", rich_help_panel=_LFW),
    ] = _TRAIN.lfw_distance_metric,
    lfw_use_flipped_images: Annotated[bool, typer.Option(rich_help_panel=_LFW)] = (
        _TRAIN.lfw_use_flipped_images
    ),
    lfw_subtract_mean: Annotated[bool, typer.Option(rich_help_panel=_LFW)] = (
        _TRAIN.lfw_subtract_mean
    ),
    lfw_batch_size: Annotated[int, typer.Option(min=1, rich_help_panel=_LFW)] = (
        _TRAIN.lfw_batch_size
    ),
    strategy: Annotated[
        str,
        typer.Option(
            help="auto (mirrored on 2+ GPUs, else one), one, mirrored (all local GPUs) or "
            "multiworker (machines named by TF_CONFIG); see docs/distributed.md.",
            rich_help_panel=_RUN,
        ),
    ] = _TRAIN.strategy,
    mixed_precision: Annotated[
        bool,
        typer.Option(
            help="16-bit compute: float16 with loss scaling on GPU, bfloat16 on CPU.",
            rich_help_panel=_RUN,
        ),
    ] = _TRAIN.mixed_precision,
    loss: Annotated[
        str,
        typer.Option(
            help="triplet (online selection), softmax (the original's classifier), arcface or "
            "cosface (margin softmax); see the README's 'Which loss to pick'.",
            rich_help_panel=_CLS,
        ),
    ] = _TRAIN.loss,
    margin_scale: Annotated[
        float | None,
        typer.Option(help="arcface/cosface scale s. Default: 64.", rich_help_panel=_CLS),
    ] = None,
    margin: Annotated[
        float | None,
        typer.Option(
            help="arcface/cosface margin m. Default: 0.5 arcface, 0.35 cosface.",
            rich_help_panel=_CLS,
        ),
    ] = None,
    easy_margin: Annotated[
        bool,
        typer.Option(help="arcface: margin only for positive cosines.", rich_help_panel=_CLS),
    ] = _TRAIN.easy_margin,
    center_loss_factor: Annotated[
        float, typer.Option(min=0.0, help="Center loss weight.", rich_help_panel=_CLS)
    ] = _TRAIN.center_loss_factor,
    center_loss_alfa: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Center update rate.", rich_help_panel=_CLS),
    ] = _TRAIN.center_loss_alfa,
    prelogits_norm_loss_factor: Annotated[
        float, typer.Option(min=0.0, help="Prelogits norm penalty.", rich_help_panel=_CLS)
    ] = _TRAIN.prelogits_norm_loss_factor,
    prelogits_norm_p: Annotated[
        float, typer.Option(help="Norm of the prelogits penalty.", rich_help_panel=_CLS)
    ] = _TRAIN.prelogits_norm_p,
    prelogits_hist_max: Annotated[
        float,
        typer.Option(
            help="Clip of the prelogits histogram (prelogits_hist.npy).", rich_help_panel=_CLS
        ),
    ] = _TRAIN.prelogits_hist_max,  # fmt: skip
    validation_set_split_ratio: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of each class's images held out.", rich_help_panel=_CLS
        ),
    ] = _TRAIN.validation_set_split_ratio,
    min_nrof_val_images_per_class: Annotated[
        int, typer.Option(min=0, rich_help_panel=_CLS)
    ] = _TRAIN.min_nrof_val_images_per_class,
    validate_every_n_epochs: Annotated[int, typer.Option(min=1, rich_help_panel=_CLS)] = (
        _TRAIN.validate_every_n_epochs
    ),
    random_rotate: Annotated[
        bool, typer.Option(help="Rotate by up to 10 degrees.", rich_help_panel=_DATA)
    ] = _TRAIN.random_rotate,
    random_color: Annotated[
        bool,
        typer.Option(
            help="Random brightness, contrast, channel gains and grayscale.", rich_help_panel=_DATA
        ),
    ] = _TRAIN.random_color,
    filter_filename: Annotated[
        Path | None,
        typer.Option(help="Distances to class centers (HDF5 or .npz).", rich_help_panel=_CLS),
    ] = None,
    filter_percentile: Annotated[
        float, typer.Option(min=0.0, max=100.0, rich_help_panel=_CLS)
    ] = _TRAIN.filter_percentile,
    filter_min_nrof_images_per_class: Annotated[
        int, typer.Option(min=0, rich_help_panel=_CLS)
    ] = _TRAIN.filter_min_nrof_images_per_class,
) -> None:
    """Train an embedding: triplet loss with online selection, or a (margin) classifier."""
    from facenet_cli.train.loop import run_train

    run_train(from_params(TrainConfig, ctx.params))


# ------------------------------------------------------------------------------------ validate


@app.command()
def validate(
    ctx: typer.Context,
    lfw_dir: Annotated[
        Path | None,
        typer.Argument(help="Aligned LFW images (<name>/<name>_0001.png). Default: demo pairs."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Argument(
            help="Run directory, checkpoint, SavedModel or .keras file. "
            "Default: the newest demo run."
        ),
    ] = None,
    lfw_pairs: Annotated[Path | None, typer.Option(help="LFW-format pairs file.")] = None,
    lfw_batch_size: Annotated[int, typer.Option(min=1)] = _VALIDATE.lfw_batch_size,
    image_size: Annotated[
        int | None, typer.Option(min=8, help="Default: the model's own (160).")
    ] = None,
    distance_metric: Annotated[
        int, typer.Option(min=0, max=1, help="0 squared Euclidean, 1 angular (arccos / pi).")
    ] = _VALIDATE.distance_metric,
    use_flipped_images: Annotated[
        bool, typer.Option(help="Concatenate the embeddings of each image and its mirror.")
    ] = _VALIDATE.use_flipped_images,
    subtract_mean: Annotated[
        bool, typer.Option(help="Subtract the training folds' mean embedding.")
    ] = _VALIDATE.subtract_mean,
    use_fixed_image_standardization: Annotated[
        bool | None, typer.Option(help="(x - 127.5) / 128. Default: the model's own.")
    ] = None,
    lfw_nrof_folds: Annotated[int, typer.Option(min=2)] = _VALIDATE.lfw_nrof_folds,
    far_target: Annotated[float, typer.Option(min=0.0, max=1.0)] = _VALIDATE.far_target,
    strict: Annotated[bool, typer.Option(help="A missing image is an error, not a skip.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    roc: Annotated[
        Path | None, typer.Option(help="Write the ROC as CSV (or a plot, with a .png name).")
    ] = None,
    make_pairs: Annotated[
        Path | None,
        typer.Option(help="Instead of validating, write a pairs file for this aligned folder."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="With --make-pairs: the file to write.")] = None,
    pairs_per_fold: Annotated[
        int, typer.Option(min=1, help="With --make-pairs: matched pairs per fold (and mismatched).")
    ] = 300,
) -> None:
    """Run the LFW 10-fold verification protocol (accuracy, VAL@FAR, AUC, EER)."""
    if make_pairs is not None:
        from facenet_cli.data.pairs import run_make_pairs

        if out is None:
            raise typer.BadParameter("--make-pairs needs --out FILE", param_hint="--out")
        run_make_pairs(
            PairsConfig(
                data_dir=make_pairs,
                out=out,
                nrof_folds=lfw_nrof_folds,
                pairs_per_fold=pairs_per_fold,
            )
        )
        return
    from facenet_cli.evaluate.validate import run_validate

    run_validate(from_params(ValidateConfig, ctx.params))


@app.command()
def pairs(
    data_dir: Annotated[Path, typer.Argument(help="Aligned folder, one sub-folder per identity.")],
    out: Annotated[Path, typer.Option(help="Pairs file to write.")],
    nrof_folds: Annotated[int, typer.Option(min=1)] = 10,
    pairs_per_fold: Annotated[
        int, typer.Option(min=1, help="Matched pairs per fold (as many mismatched).")
    ] = 300,
    seed: Annotated[int, typer.Option()] = 666,
) -> None:
    """Write a balanced LFW-format pairs file for any aligned folder."""
    from facenet_cli.data.pairs import run_make_pairs

    run_make_pairs(PairsConfig(data_dir, out, nrof_folds, pairs_per_fold, seed))


# -------------------------------------------------------------------------------------- export


@app.command()
def export(
    source: Annotated[Path, typer.Argument(help="Run directory or checkpoint.")],
    out: Annotated[Path, typer.Argument(help="Output folder (SavedModel + .keras + sidecar).")],
) -> None:
    """Export an embedding model as a SavedModel and a .keras file, and check parity."""
    from facenet_cli.models.export import run_export

    run_export(source, out)


# --------------------------------------------------------------------------------------- board


@app.command()
def board(
    ctx: typer.Context,
    logdir: Annotated[
        Path, typer.Argument(help="Log directory with one folder per run.")
    ] = _BOARD.logdir,
    once: Annotated[
        bool, typer.Option(help="Print the latest values of every run and exit (5 on alerts).")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="With --once: print JSON.")] = False,
    tensorboard: Annotated[
        bool, typer.Option(help="Also start TensorBoard on localhost and print its address.")
    ] = False,
    port: Annotated[int, typer.Option(min=1, max=65535, help="TensorBoard port.")] = _BOARD.port,
    poll_interval: Annotated[float, typer.Option(min=0.05, help="Seconds between polls.")] = (
        _BOARD.poll_interval
    ),
) -> None:
    """Live terminal dashboard over training event files (no TensorFlow needed)."""
    from tui.app import run_board

    code = run_board(from_params(BoardConfig, ctx.params))
    if code:
        raise typer.Exit(code)


# ---------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    ctx: typer.Context,
    minutes: Annotated[
        float,
        typer.Option(
            min=0.1,
            help="Training length: the steps a busy 2-core CPU trains in this many minutes "
            "(120 a minute; a faster machine finishes sooner).",
        ),
    ] = _DEMO.minutes,
    out: Annotated[
        Path | None, typer.Option(help="Working folder. Default: ~/.cache/facenet/demo.")
    ] = None,
    seed: Annotated[int, typer.Option()] = _DEMO.seed,
    dry_run: Annotated[
        bool, typer.Option(help="Print the four commands the demo runs, and exit.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the whole recipe (align, train, validate) on built-in real faces, in minutes."""
    from facenet_cli.demo import run_demo

    run_demo(from_params(DemoConfig, ctx.params))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="facenet")


if __name__ == "__main__":  # pragma: no cover
    main()
