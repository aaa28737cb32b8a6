"""``facenet train``: train an embedding; with no data arguments, on the demo faces.

Its options are generated from ``TrainConfig``'s declarations (``commands/declared.py``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from facenet_cli.commands.declared import declared_command
from facenet_cli.config import TrainConfig, from_params


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


def _train(ctx: typer.Context, params: dict[str, Any]) -> None:
    from facenet_cli.train.run import run_train

    if params.get("resume") is None and params.get("data_dir") is None:
        from facenet_cli.demo.data import train_params

        params = train_params(params)
    elif params.get("resume") is not None and params.get("models_base_dir") is None:
        from facenet_cli.demo.data import resume_dir

        params["resume"] = resume_dir(params["resume"])
    if params.get("resume") is not None:
        _warn_fixed_on_resume(ctx)
    run_train(from_params(TrainConfig, params))


_CONFIG = inspect.Parameter(
    "config", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[Path | None, typer.Option(
        is_eager=True, callback=_load_config_file, rich_help_panel="Run",
        help="TOML file with any of these options (snake_case keys); the command line wins.",
    )],
)  # fmt: skip


def register(app: typer.Typer) -> None:
    """Declare ``facenet train`` on ``app``: one option per ``TrainConfig`` field."""
    app.command(name="train")(declared_command(
        TrainConfig, _train, extra=[_CONFIG],
        doc="Train an embedding: triplet loss with online selection, or a (margin) classifier.",
    ))  # fmt: skip


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
