"""``facenet train``: triplet-loss training; with no data arguments, on the demo faces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facenet_cli.commands import checks
from facenet_cli.config import TrainConfig, from_params

_TRAIN = TrainConfig()


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
    _check_ranges(ctx, value, options)
    ctx.default_map = {**(ctx.default_map or {}), **options}
    return value


def _check_ranges(ctx: typer.Context, path: Path, options: dict[str, Any]) -> None:
    """Each value of the file through its option's own type (ranges included), so that a value
    out of range names the file and the key rather than only the option."""
    from facenet_cli.errors import InputError

    params = {param.name: param for param in ctx.command.params}
    for key, raw in options.items():
        param = params.get(key)
        if param is None:
            continue
        try:
            param.process_value(ctx, raw)
        except typer.BadParameter as exc:
            raise InputError(f"{path}: {key} = {raw!r}: {exc.message}") from None


_DATA = "Data"
_MODEL = "Model"
_OPT = "Optimisation"
_SEL = "Triplet selection"
_LFW = "LFW evaluation"
_CLS = "Classifier (--loss softmax/arcface/cosface)"
_RUN = "Run"


def register(app: typer.Typer) -> None:
    """Declare ``facenet train`` on ``app``."""

    @app.command()
    def train(
        ctx: typer.Context,
        config: Annotated[
            Path | None,
            typer.Option(
                is_eager=True,
                callback=_load_config_file,
                help="TOML file with any of these options (snake_case keys); the command line "
                "wins.",
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
            Path | None,
            typer.Option(
                help="Event files go to <this>/<run>/.",
                show_default=str(_TRAIN.logs_base_dir),
                rich_help_panel=_RUN,
            ),
        ] = None,
        models_base_dir: Annotated[
            Path | None,
            typer.Option(
                help="Checkpoints go to <this>/<run>/.",
                show_default=str(_TRAIN.models_base_dir),
                rich_help_panel=_RUN,
            ),
        ] = None,
        model_def: Annotated[
            str | None,
            typer.Option(
                help="Registered model (inception_resnet_v1, inception_resnet_v2, squeezenet, "
                "small, small_pooled, mobilefacenet, demo_small; models.inception_resnet_v1 "
                "also works) or package.module:function. Default: inception_resnet_v1, or "
                "demo_small on the demo faces.",
                rich_help_panel=_MODEL,
            ),
        ] = None,
        max_nrof_epochs: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="Default: 500, or the resumed run's.",
                show_default=False,
                rich_help_panel=_RUN,
            ),
        ] = None,
        max_steps: Annotated[
            int | None,
            typer.Option(min=1, help="Stop after this global step.", rich_help_panel=_RUN),
        ] = None,
        batch_size: Annotated[
            int | None,
            typer.Option(
                min=3,
                help="Images per step; a multiple of 3.",
                show_default=str(_TRAIN.batch_size),
                rich_help_panel=_OPT,
            ),
        ] = None,
        image_size: Annotated[
            int | None,
            typer.Option(min=8, show_default=str(_TRAIN.image_size), rich_help_panel=_DATA),
        ] = None,
        people_per_batch: Annotated[
            int | None,
            typer.Option(
                min=2,
                help="Identities sampled per selection round.",
                show_default=str(_TRAIN.people_per_batch),
                rich_help_panel=_SEL,
            ),
        ] = None,
        images_per_person: Annotated[
            int | None,
            typer.Option(
                min=2,
                help="Images sampled per identity.",
                show_default=str(_TRAIN.images_per_person),
                rich_help_panel=_SEL,
            ),
        ] = None,
        epoch_size: Annotated[
            int | None,
            typer.Option(
                min=1,
                help="Training steps per epoch.",
                show_default=str(_TRAIN.epoch_size),
                rich_help_panel=_RUN,
            ),
        ] = None,
        alpha: Annotated[
            float | None,
            typer.Option(
                min=0.0,
                help="Triplet margin.",
                show_default=str(_TRAIN.alpha),
                rich_help_panel=_SEL,
            ),
        ] = None,
        embedding_size: Annotated[int, typer.Option(min=1, rich_help_panel=_MODEL)] = (
            _TRAIN.embedding_size
        ),
        random_crop: Annotated[bool, typer.Option(rich_help_panel=_DATA)] = _TRAIN.random_crop,
        random_flip: Annotated[
            bool | None,
            typer.Option(show_default=str(_TRAIN.random_flip), rich_help_panel=_DATA),
        ] = None,
        use_fixed_image_standardization: Annotated[
            bool,
            typer.Option(help="(x - 127.5) / 128 instead of per-image.", rich_help_panel=_DATA),
        ] = _TRAIN.use_fixed_image_standardization,
        keep_probability: Annotated[
            float,
            typer.Option(
                min=0.0,
                max=1.0,
                help="Dropout keep probability.",
                rich_help_panel=_MODEL,
            ),
        ] = _TRAIN.keep_probability,
        weight_decay: Annotated[
            float | None,
            typer.Option(min=0.0, show_default=str(_TRAIN.weight_decay), rich_help_panel=_MODEL),
        ] = None,
        optimizer: Annotated[
            str | None,
            typer.Option(
                help="ADAGRAD, ADADELTA, ADAM, RMSPROP or MOM.",
                callback=checks.optimizer,
                show_default=_TRAIN.optimizer,
                rich_help_panel=_OPT,
            ),
        ] = None,
        learning_rate: Annotated[
            float | None,
            typer.Option(
                help="Initial rate; <= 0 uses --learning-rate-schedule-file.",
                callback=checks.finite,
                show_default=str(_TRAIN.learning_rate),
                rich_help_panel=_OPT,
            ),
        ] = None,
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
        moving_average_decay: Annotated[
            float | None,
            typer.Option(
                min=0.0,
                max=1.0,
                help="Decay of the weights' moving average (the exported model).",
                show_default=str(_TRAIN.moving_average_decay),
                rich_help_panel=_OPT,
            ),
        ] = None,
        triplet_selection: Annotated[
            str,
            typer.Option(
                help="random (the original's rule), semi-hard or hard.",
                callback=checks.triplet_selection,
                rich_help_panel=_SEL,
            ),
        ] = _TRAIN.triplet_selection,
        selection_mode: Annotated[
            str | None,
            typer.Option(
                help="Embed for selection in inference (default) or training mode.",
                callback=checks.selection_mode,
                show_default=_TRAIN.selection_mode,
                rich_help_panel=_SEL,
            ),
        ] = None,
        seed: Annotated[int, typer.Option(rich_help_panel=_RUN)] = _TRAIN.seed,
        gpu_memory_fraction: Annotated[
            float, typer.Option(min=0.0, max=1.0, rich_help_panel=_RUN)
        ] = _TRAIN.gpu_memory_fraction,
        pretrained_model: Annotated[
            Path | None,
            typer.Option(help="Checkpoint or model to start from.", rich_help_panel=_MODEL),
        ] = None,
        resume: Annotated[
            Path | None,
            typer.Option(
                help="Run directory (or name) to continue at its exact step.",
                rich_help_panel=_RUN,
            ),
        ] = None,
        keep_checkpoints: Annotated[int, typer.Option(min=1, rich_help_panel=_RUN)] = (
            _TRAIN.keep_checkpoints
        ),
        lfw_dir: Annotated[
            Path | None,
            typer.Option(help="Aligned LFW (or pairs) images.", rich_help_panel=_LFW),
        ] = None,
        lfw_pairs: Annotated[
            Path | None,
            typer.Option(
                help="Pairs file, LFW or path-based (see `facenet pairs --help`). "
                "Default: pairs.txt in or beside LFW_DIR, else the official LFW pairs file.",
                rich_help_panel=_LFW,
            ),
        ] = None,
        lfw_nrof_folds: Annotated[
            int | None,
            typer.Option(
                min=2,
                help="Folds of the protocol. Default: the K of the pairs file's 'K N' header "
                "(the official file's 10, or the folds `facenet pairs` drew), else 10.",
                rich_help_panel=_LFW,
            ),
        ] = None,
        lfw_distance_metric: Annotated[
            int,
            typer.Option(
                min=0,
                max=1,
                help="0 squared Euclidean, 1 angular.",
                rich_help_panel=_LFW,
            ),
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
            str | None,
            typer.Option(
                help="auto (mirrored on 2+ GPUs, else one), one, mirrored (all local GPUs) or "
                "multiworker (machines named by TF_CONFIG); see docs/distributed.md. Default: "
                "auto, or the resumed run's.",
                show_default=False,
                callback=checks.strategy,
                rich_help_panel=_RUN,
            ),
        ] = None,
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
                callback=checks.loss,
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
            float | None,
            typer.Option(
                min=0.0,
                help="Prelogits norm penalty.",
                show_default=str(_TRAIN.prelogits_norm_loss_factor),
                rich_help_panel=_CLS,
            ),
        ] = None,
        prelogits_norm_p: Annotated[
            float, typer.Option(help="Norm of the prelogits penalty.", rich_help_panel=_CLS)
        ] = _TRAIN.prelogits_norm_p,
        prelogits_hist_max: Annotated[
            float,
            typer.Option(
                help="Clip of the prelogits histogram (prelogits_hist.npy).", rich_help_panel=_CLS
            ),
        ] = _TRAIN.prelogits_hist_max,
        validation_set_split_ratio: Annotated[
            float,
            typer.Option(
                min=0.0,
                max=1.0,
                help="Share of each class's images held out.",
                rich_help_panel=_CLS,
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
                help="Random brightness, contrast, channel gains and grayscale.",
                rich_help_panel=_DATA,
            ),
        ] = _TRAIN.random_color,
        flip_fusion: Annotated[
            bool,
            typer.Option(
                help="The model's embedding of a face is the normalised sum of the embeddings of "
                "the face and its mirror image (two forward passes a face); recorded in "
                "model.json, so evaluation, validate, compare, embed, classify and the export "
                "all use it.",
                rich_help_panel=_DATA,
            ),
        ] = _TRAIN.flip_fusion,
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
        deterministic: Annotated[
            bool | None,
            typer.Option(
                help="Deterministic ops and 2 intra-op threads: the same weights for the seed "
                "on any core count (same TensorFlow, same CPU instruction set).",
                show_default=str(_TRAIN.deterministic),
                rich_help_panel=_RUN,
            ),
        ] = None,
        xla: Annotated[
            bool | None,
            typer.Option(
                help="Compile the train step and the forward passes with XLA (jit_compile; "
                "one-device runs). Default: off on CPU, where it measured slower "
                "(BENCHMARKS.md), and off on GPU until measured there.",
                show_default=False,
                rich_help_panel=_RUN,
            ),
        ] = None,
    ) -> None:
        """Train an embedding: triplet loss with online selection, or a (margin) classifier."""
        from facenet_cli.train.run import run_train

        params = dict(ctx.params)
        if resume is None and data_dir is None:
            from facenet_cli.demo.data import train_params

            params = train_params(params)
        elif resume is not None and models_base_dir is None:
            from facenet_cli.demo.data import resume_dir

            params["resume"] = resume_dir(resume)
        if resume is not None:
            _warn_fixed_on_resume(ctx)
        run_train(from_params(TrainConfig, params))


def _warn_fixed_on_resume(ctx: typer.Context) -> None:
    """A resumed run keeps its own settings: say which given options it ignores."""
    from facenet_cli.progress import console
    from facenet_cli.train.settings import RESUME_OVERRIDES

    allowed = {*RESUME_OVERRIDES, "resume", "models_base_dir", "config"}
    ignored = [
        "--" + name.replace("_", "-")
        for name in ctx.params
        if name not in allowed
        # By name: Typer may bring its own copy of Click's ParameterSource.
        and getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"
    ]
    if ignored:
        changeable = ", ".join("--" + o.replace("_", "-") for o in RESUME_OVERRIDES)
        console.print(
            f"[yellow]warning:[/] {', '.join(ignored)}: a resumed run keeps its own settings "
            f"(its config.toml); only {changeable} can change",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
