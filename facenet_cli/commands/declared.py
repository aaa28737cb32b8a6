"""Typer options built from a config dataclass's declarations (``facenet_cli.options``).

``declared_command(cls)`` turns a command body ``body(ctx, params)`` into a Typer command whose
options are exactly the declared fields of ``cls``: their types, ranges (Click's ranges, so
``--help`` shows them), choices, panels and help, with the declared default shown in ``--help``.
On the command line every option defaults to None ("not given"), and the body builds the config
with ``from_params``, which leaves the dataclass default in place, so no default is written
twice.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from facenet_cli.options import Opt, declared, problem, range_text, shown_default


def _value_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(annotation) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _callback(opt: Opt) -> Callable[[Any], Any]:
    """A Click callback refusing what the declaration refuses (its range, choices and
    infinities), in the declaration's words."""

    def check(value: Any) -> Any:
        why = problem(opt, value)
        if why is not None:
            raise typer.BadParameter(f"{value!r} is {why}")
        return value

    return check


def parameter(f: dataclasses.Field[Any], opt: Opt, hints: dict[str, Any]) -> inspect.Parameter:
    """The Typer parameter of one declared field."""
    kind = _value_type(hints[f.name])
    metavar = None
    if typing.get_origin(kind) is tuple:
        kind = list[typing.get_args(kind)[0]]  # type: ignore[misc]  # a repeatable option
        metavar = "TEXT"  # given once per value
    shown = shown_default(f, opt)
    # The range is checked by the callback, in the declaration's words, and said in --help.
    limits = range_text(opt)
    help_text = " ".join(filter(None, [opt.help, f"Range: {limits}." if limits else None]))
    info = typer.Option(
        help=help_text or None,
        rich_help_panel=opt.panel,
        show_default=shown if shown is not None else False,
        callback=_callback(opt),
        metavar=metavar,
    )
    return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind | None, info])  # fmt: skip


def declared_annotation(cls: type, name: str) -> Any:
    """The ``Annotated`` Typer type of one declared field of ``cls`` (default None), for a
    command that declares its other options by hand."""
    hints = typing.get_type_hints(cls)
    ((f, opt),) = [(f, opt) for f, opt in declared(cls) if f.name == name]
    return parameter(f, opt, hints).annotation


def declared_command(cls: type, body: Callable[[typer.Context, dict[str, Any]], None], *,
                     extra: list[inspect.Parameter] = (),  # type: ignore[assignment]
                     doc: str) -> Callable[..., None]:  # fmt: skip
    """A command function with ``ctx``, the ``extra`` parameters and every declared option of
    ``cls``, that calls ``body(ctx, ctx.params)``."""
    hints = typing.get_type_hints(cls)

    def command(ctx: typer.Context, **_params: Any) -> None:
        # A repeatable option given no value is "not given" too.
        body(ctx, {k: (None if v in ((), []) else v) for k, v in ctx.params.items()})

    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=typer.Context)  # fmt: skip
    params = [context, *extra, *(parameter(f, opt, hints) for f, opt in declared(cls))]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {"ctx": typer.Context, "return": None}
    command.__doc__ = doc
    return command
