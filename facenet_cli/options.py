"""One declaration per option: a config field's default, type, range, choices and help.

A command's config dataclass declares each option once, as a field made by :func:`option`. From
that one declaration come the command line (``facenet_cli.commands.declared`` builds the Typer
options, their ranges, choices, help panels and the defaults ``--help`` shows), the check of a
``--config`` TOML file, and the library's own check (:func:`check_options`), so a value the
command line refuses is refused the same way when the library is called directly, and a default
is written in exactly one place. Pure Python: no Typer, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from facenet_cli.errors import InputError

META_KEY = "option"


@dataclass(frozen=True)
class Opt:
    """How a config field is offered and checked.

    Attributes:
        help: the ``--help`` text.
        panel: the ``--help`` panel the option is listed in.
        min, max: the allowed range (inclusive unless ``min_open`` / ``max_open``).
        choices: the allowed values: a tuple, or ``"module:attr"`` naming a tuple (or a function
            returning one) where the list lives with the code that uses it (read only when a
            value is checked, so ``--help`` imports nothing heavy).
        upper: choices compared in upper case, surrounding spaces ignored (the optimizers).
        finite: nan and infinities are refused.
        shown_default: what ``--help`` shows as the default when the field's default is None
            ("not given") and the real value is resolved later.

    On the command line every declared option defaults to None, "not given": the config's own
    default then applies, unless something fills the option in first (the demo's settings, a
    resumed run's own config).
    """

    help: str = ""
    panel: str | None = None
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    choices: tuple[str, ...] | str | None = None
    upper: bool = False
    finite: bool = False
    shown_default: str | None = None


def option(default: Any = None, *, default_factory: Callable[[], Any] | None = None,
           **opt: Any) -> Any:  # fmt: skip
    """A dataclass field carrying its :class:`Opt` (``opt``: the Opt's attributes)."""
    metadata = {META_KEY: Opt(**opt)}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared(cls: type) -> list[tuple[dataclasses.Field[Any], Opt]]:
    """The fields of config ``cls`` that are options, in declaration order."""
    return [(f, f.metadata[META_KEY]) for f in dataclasses.fields(cls) if META_KEY in f.metadata]


def field_default(f: dataclasses.Field[Any]) -> Any:
    """A field's default value (its factory called)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def flag(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def resolve_choices(opt: Opt) -> tuple[str, ...] | None:
    """The option's allowed values (a ``"module:attr"`` reference imported now)."""
    if opt.choices is None or isinstance(opt.choices, tuple):
        return opt.choices
    module, _, attr = opt.choices.partition(":")
    value = getattr(importlib.import_module(module), attr)
    return tuple(value() if callable(value) else value)


def range_text(opt: Opt) -> str | None:
    """The range in words (``in [0, 1)``, ``>= 1``), or None without one."""
    if opt.min is not None and opt.max is not None:
        left, right = "(" if opt.min_open else "[", ")" if opt.max_open else "]"
        return f"in {left}{_num(opt.min)}, {_num(opt.max)}{right}"
    if opt.min is not None:
        return f"{'>' if opt.min_open else '>='} {_num(opt.min)}"
    if opt.max is not None:
        return f"{'<' if opt.max_open else '<='} {_num(opt.max)}"
    return None


def _num(value: float) -> str:
    if value == math.pi / 2:
        return "pi/2"
    return f"{value:g}"


def problem(opt: Opt, value: Any) -> str | None:
    """Why ``value`` is not allowed for the option (``not in [0, 1)``), or None when it is
    (None values are "not given" and always allowed)."""
    if value is None:
        return None
    if isinstance(value, float) and opt.finite and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, int | float) and not isinstance(value, bool):
        low_bad = opt.min is not None and (value <= opt.min if opt.min_open else value < opt.min)
        high_bad = opt.max is not None and (value >= opt.max if opt.max_open else value > opt.max)
        if low_bad or high_bad or (isinstance(value, float) and math.isnan(value)
                                   and (opt.min is not None or opt.max is not None)):  # fmt: skip
            return f"not {range_text(opt)}"
    choices = resolve_choices(opt)
    if choices is not None and isinstance(value, str):
        given = value.strip().upper() if opt.upper else value
        if given not in choices:
            return f"not one of {', '.join(choices)}"
    return None


def check_options(config: Any) -> None:
    """Refuse a config whose values are outside their declared ranges or choices.

    Raises:
        InputError: ``--option value: why`` for the first value that is not allowed.
    """
    for f, opt in declared(type(config)):
        why = problem(opt, getattr(config, f.name))
        if why is not None:
            raise InputError(f"{flag(f.name)} {getattr(config, f.name)!r}: {why}")


def shown_default(f: dataclasses.Field[Any], opt: Opt) -> str | None:
    """What ``--help`` shows as the option's default (None: nothing)."""
    if opt.shown_default is not None:
        return opt.shown_default
    value = field_default(f)
    if value is None:
        return None
    if isinstance(value, bool):
        return f.name.replace("_", "-") if value else "no-" + f.name.replace("_", "-")
    if isinstance(value, Sequence) and not isinstance(value, str):
        return " ".join(str(v) for v in value) or None
    return str(value)
