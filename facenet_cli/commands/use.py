"""``facenet compare``, ``facenet embed`` and ``facenet classify train|predict``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facenet_cli.commands import checks
from facenet_cli.commands.declared import declared_annotation
from facenet_cli.config import (
    ClassifyPredictConfig,
    ClassifyTrainConfig,
    CompareConfig,
    EmbedConfig,
    from_params,
)

# --xla as declared on the config (its help and default text shared with train).
XlaOpt = declared_annotation(EmbedConfig, "xla")

_TRAIN = ClassifyTrainConfig(Path(), Path(), Path())

ModelArg = Annotated[
    Path, typer.Argument(help="Run directory, checkpoint, export, SavedModel or .keras file.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
BatchOpt = Annotated[int, typer.Option(min=1, help="Images per batch.")]
AlignOpt = Annotated[
    bool,
    typer.Option(
        "--align",
        help="The images are raw photos: detect the most central face and cut it with the "
        "model's training geometry (default: already aligned crops).",
    ),
]
MetricOpt = Annotated[
    int | None,
    typer.Option(
        min=0, max=1,
        help="0 squared Euclidean, 1 angular. Default: the metric of the model's threshold.",
    ),
]  # fmt: skip
SplitOpt = Annotated[
    bool,
    typer.Option(
        help="Split each identity: --nrof-train-images-per-class images to train on, the rest "
        "held out (the original's option)."
    ),
]
MinImagesOpt = Annotated[
    int, typer.Option(min=1, help="With --use-split-dataset: identities with fewer are left out.")
]
NrofTrainOpt = Annotated[
    int, typer.Option(min=1, help="With --use-split-dataset: training images per identity.")
]
SeedOpt = Annotated[int, typer.Option(help="Seed of the split.")]


def register(app: typer.Typer) -> None:
    """Add ``compare``, ``embed`` and the ``classify`` group to ``app``."""
    app.command()(compare)
    app.command()(embed)
    classify = typer.Typer(
        name="classify",
        help="Train a classifier on your own people's photos, then name people in new photos.",
        no_args_is_help=True,
    )
    classify.command("train")(classify_train)
    classify.command("predict")(classify_predict)
    app.add_typer(classify)


def compare(
    ctx: typer.Context,
    model: ModelArg,
    images: Annotated[list[Path], typer.Argument(help="Photos to compare (two or more faces).")],
    all_faces: Annotated[
        bool, typer.Option(help="Compare every face found, not only the most central one.")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Same person below this distance. Default: the model's (model.json).",
            callback=checks.distance,
        ),
    ] = None,
    distance_metric: MetricOpt = None,
    json: JsonOpt = False,
) -> None:
    """Are these photos the same person? Distance matrix and a verdict per pair."""
    from facenet_cli.use.compare_job import run_compare

    params = {**ctx.params, "images": tuple(images)}
    run_compare(from_params(CompareConfig, params))


def embed(
    ctx: typer.Context,
    model: ModelArg,
    data_dir: Annotated[Path, typer.Argument(help="Folder with one sub-folder per identity.")],
    out: Annotated[
        Path,
        typer.Option(help="The .npz to write (reused on a rerun).", callback=checks.out_file),
    ],
    align: AlignOpt = False,
    batch_size: BatchOpt = 100,
    json: JsonOpt = False,
    xla: XlaOpt = None,  # type: ignore[valid-type]
    flip: Annotated[
        bool,
        typer.Option(
            help="Fuse each face's embedding with its mirror image's (normalised sum; two "
            "forward passes a face)."
        ),
    ] = EmbedConfig.flip,
) -> None:
    """Embed a whole folder into one .npz (embeddings, relative paths, identity labels)."""
    from facenet_cli.use.embed_job import run_embed

    run_embed(from_params(EmbedConfig, ctx.params))


def classify_train(
    ctx: typer.Context,
    model: ModelArg,
    data_dir: Annotated[Path, typer.Argument(help="Folder with one sub-folder per person.")],
    out: Annotated[
        Path,
        typer.Option(help="Classifier file to write (.npz, no pickle).", callback=checks.out_file),
    ],
    align: AlignOpt = False,
    use_split_dataset: SplitOpt = False,
    min_nrof_images_per_class: MinImagesOpt = _TRAIN.min_nrof_images_per_class,
    nrof_train_images_per_class: NrofTrainOpt = _TRAIN.nrof_train_images_per_class,
    seed: SeedOpt = _TRAIN.seed,
    min_probability: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Below this probability: unknown.")
    ] = _TRAIN.min_probability,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Unknown when farther than this from every training photo of the person. "
            "Default: one calibrated on the training photos (see --known-rate); with one "
            "photo per person, the model's pair threshold.",
            callback=checks.distance,
        ),
    ] = None,
    batch_size: BatchOpt = 100,
    json: JsonOpt = False,
    flip: Annotated[
        bool,
        typer.Option(
            help="Fuse each face's embedding with its mirror image's (normalised sum): fewer "
            "strangers named at the same accuracy on known people. Recorded in the classifier; "
            "predict embeds the same way."
        ),
    ] = _TRAIN.flip,
    whiten: Annotated[
        bool,
        typer.Option(
            help="Whiten the embeddings with the within-person covariance of the training "
            "photos (Ledoit-Wolf shrinkage) before classifying and measuring distances, when "
            "they hold at least as many photos beyond each person's first as the embedding "
            "has dimensions."
        ),
    ] = _TRAIN.whiten,
    known_rate: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Calibrate the unknown threshold to name at least this share of the training "
            "photos' own people (cross-validated on them). 0: the threshold that best balances "
            "known people named against strangers called unknown. Higher names more of your "
            "people and more strangers as someone.",
        ),
    ] = _TRAIN.known_rate,
) -> None:
    """Train a classifier on the embeddings of a folder of people."""
    from facenet_cli.use.classify_job import run_classify_train

    run_classify_train(from_params(ClassifyTrainConfig, ctx.params))


def classify_predict(
    ctx: typer.Context,
    model: ModelArg,
    classifier: Annotated[Path, typer.Argument(help="File written by `classify train`.")],
    images: Annotated[
        Path, typer.Argument(help="An image, a folder of images or a folder of identities.")
    ],
    align: AlignOpt = False,
    use_split_dataset: Annotated[
        bool, typer.Option(help="Name only the held-out images of the training split.")
    ] = False,
    min_nrof_images_per_class: MinImagesOpt = _TRAIN.min_nrof_images_per_class,
    nrof_train_images_per_class: NrofTrainOpt = _TRAIN.nrof_train_images_per_class,
    seed: SeedOpt = _TRAIN.seed,
    min_probability: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="Below this: unknown. Default: the classifier's."),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            help="Distance beyond which a face is unknown. Default: the classifier's.",
            callback=checks.distance,
        ),
    ] = None,
    batch_size: BatchOpt = 100,
    json: JsonOpt = False,
) -> None:
    """Name the people in photos ("unknown" for faces the classifier does not know)."""
    from facenet_cli.use.classify_job import run_classify_predict

    run_classify_predict(from_params(ClassifyPredictConfig, ctx.params))
