"""``facenet validate`` and ``pairs``: evaluate a model, make pairs files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from facenet_cli.commands import checks
from facenet_cli.commands.declared import declared_annotation
from facenet_cli.config import PairsConfig, ValidateConfig, from_params

# --xla as declared on the config (its help and default text shared with train).
XlaOpt = declared_annotation(ValidateConfig, "xla")


_VALIDATE = ValidateConfig()


def register(app: typer.Typer) -> None:
    """Declare ``facenet validate`` and ``pairs`` on ``app``."""

    @app.command()
    def validate(
        ctx: typer.Context,
        lfw_dir: Annotated[
            Path | None,
            typer.Argument(
                help="Aligned LFW images (<name>/<name>_0001.png). Default: demo pairs."
            ),
        ] = None,
        model: Annotated[
            Path | None,
            typer.Argument(
                help="Run directory, checkpoint, SavedModel or .keras file. "
                "Default: the newest demo run."
            ),
        ] = None,
        lfw_pairs: Annotated[
            Path | None,
            typer.Option(
                help="Pairs file, LFW or path-based (see `facenet pairs --help`). Default: "
                "pairs.txt in or beside LFW_DIR, else the official LFW pairs file."
            ),
        ] = None,
        lfw_batch_size: Annotated[int, typer.Option(min=1)] = _VALIDATE.lfw_batch_size,
        image_size: Annotated[
            int | None, typer.Option(min=8, help="Default: the model's own (160).")
        ] = None,
        distance_metric: Annotated[
            int,
            typer.Option(min=0, max=1, help="0 squared Euclidean, 1 angular (arccos / pi)."),
        ] = _VALIDATE.distance_metric,
        use_flipped_images: Annotated[
            bool,
            typer.Option(help="Concatenate the embeddings of each image and its mirror."),
        ] = _VALIDATE.use_flipped_images,
        subtract_mean: Annotated[
            bool, typer.Option(help="Subtract the training folds' mean embedding.")
        ] = _VALIDATE.subtract_mean,
        use_fixed_image_standardization: Annotated[
            bool | None,
            typer.Option(help="(x - 127.5) / 128. Default: the model's own."),
        ] = None,
        lfw_nrof_folds: Annotated[
            int | None,
            typer.Option(
                min=2,
                help="Folds of the protocol. Default: K of the pairs file's 'K N' header (the "
                "folds `facenet pairs` drew), else 10.",
            ),
        ] = None,
        far_target: Annotated[float, typer.Option(min=0.0, max=1.0)] = _VALIDATE.far_target,
        strict: Annotated[
            bool, typer.Option(help="A missing image is an error, not a skip.")
        ] = False,
        json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
        roc: Annotated[
            Path | None,
            typer.Option(help="Write the ROC as CSV (or a plot, with a .png name)."),
        ] = None,
        record_threshold: Annotated[
            bool,
            typer.Option(
                help="Store the accuracy-maximising threshold, with its metric and protocol, "
                "in the model's model.json, where compare and classify read it (only for a "
                "plain evaluation: not with flips, mean subtraction or another crop size).",
            ),
        ] = _VALIDATE.record_threshold,
        xla: XlaOpt = None,  # type: ignore[valid-type]
        benchmark: Annotated[
            list[str] | None,
            typer.Option(
                help="NAME=PATH, repeatable: validate on several benchmarks and print one table "
                "(NAME: lfw, cfp_ff, cfp_fp, agedb_30, calfw, cplfw; PATH: an insightface .bin "
                "pack, the CFP folder, or an image folder / pairs file). Give MODEL alone then.",
                show_default=False,
            ),
        ] = None,
        all_checkpoints: Annotated[
            bool,
            typer.Option(
                "--all-checkpoints",
                help="Validate every checkpoint of the run MODEL, in step order (accuracy over "
                "steps, written as events).",
            ),
        ] = False,
        worst: Annotated[
            int,
            typer.Option(min=0, help="List the N most confident false accepts and rejects."),
        ] = 0,
        worst_png: Annotated[
            Path | None,
            typer.Option(help="Draw the worst pairs as a contact sheet (PNG)."),
        ] = None,
        events_dir: Annotated[
            Path | None,
            typer.Option(
                help="Write the benchmarks' figures as events here. Default: the run's log "
                "folder when MODEL is a training run with one.",
            ),
        ] = None,
        embedding_cache: Annotated[
            bool,
            typer.Option(
                help="With benchmarks: reuse the embeddings of (model, image) of an earlier "
                "run (under $FACENET_CACHE/embeddings).",
            ),
        ] = True,
        make_pairs: Annotated[
            Path | None,
            typer.Option(help="Instead of validating, write a pairs file for this aligned folder."),
        ] = None,
        out: Annotated[
            Path | None, typer.Option(help="With --make-pairs: the file to write.")
        ] = None,
        pairs_per_fold: Annotated[
            int,
            typer.Option(
                min=1,
                help="With --make-pairs: matched pairs per fold (and mismatched).",
            ),
        ] = 300,
    ) -> None:
        """Run the LFW 10-fold verification protocol (accuracy, VAL@FAR, AUC, EER).

        \b
        Several benchmarks in one table:
          facenet validate MODEL --benchmark lfw=lfw.bin --benchmark cfp_fp=cfp/
        LFW_DIR may be an insightface verification pack (lfw.bin): read without running any
        code a pickle could name (a pack that names code is refused, exit code 3).
        """
        if make_pairs is not None:
            from facenet_cli.data.pairs import run_make_pairs

            if out is None:
                raise typer.BadParameter("--make-pairs needs --out FILE", param_hint="--out")
            run_make_pairs(
                PairsConfig(
                    data_dir=make_pairs,
                    out=out,
                    nrof_folds=lfw_nrof_folds or 10,
                    pairs_per_fold=pairs_per_fold,
                )
            )
            return
        from facenet_cli.evaluate.validate import run_validate, uses_benchmarks

        config = from_params(ValidateConfig, {**ctx.params, "benchmark": tuple(benchmark or ())})
        if lfw_dir is None and model is None:
            from facenet_cli.demo.data import validate_config

            config = validate_config(config)
        if uses_benchmarks(config):
            from facenet_cli.evaluate.benchmark_job import run_benchmarks

            run_benchmarks(config)
        else:
            run_validate(config)

    @app.command()
    def pairs(
        data_dir: Annotated[
            Path, typer.Argument(help="Aligned folder, one sub-folder per identity.")
        ],
        out: Annotated[Path, typer.Option(help="Pairs file to write.", callback=checks.out_file)],
        nrof_folds: Annotated[
            int, typer.Option(min=2, help="Folds (validate cross-validates over them).")
        ] = 10,
        pairs_per_fold: Annotated[
            int,
            typer.Option(min=1, help="Matched pairs per fold (as many mismatched)."),
        ] = 300,
        seed: Annotated[int, typer.Option()] = 666,
        format: Annotated[
            Literal["lfw", "paths"] | None,
            typer.Option(
                "--format",
                help="Force a format. Default: lfw when every file allows it, else paths.",
            ),
        ] = None,
    ) -> None:
        """Write a balanced pairs file for any aligned folder, whatever its file names.

        \b
        LFW format when every image is <name>/<name>_<idx:04d>.<ext>:
          name idx1 idx2            (a matched pair)
          name1 idx1 name2 idx2     (a mismatched pair)
        otherwise the path-based format, paths relative to the data folder:
          s1/1.png  s1/7.png  same
          s1/1.png  s2/3.png  different

        Separate the fields with tabs when a path contains spaces; lines starting with # are
        comments. An optional first line "K N" says K folds of N matched then N mismatched pairs.
        Folds are identity-disjoint (a person in one fold only) when the identities allow it.
        validate and train --lfw-pairs read both formats; a file written by hand works the same.
        """
        from facenet_cli.data.pairs import run_make_pairs

        run_make_pairs(PairsConfig(data_dir, out, nrof_folds, pairs_per_fold, seed, format))
