"""Reading ``--config FILE.toml`` for commands that accept one."""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
import types
import typing
from collections.abc import Collection
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError

# Tables named after a command configure that command; a file may hold several of them.
COMMAND_TABLES = frozenset({"align", "train", "validate", "pairs", "board", "demo", "export"})


def read_config_file(
    path: Path,
    command: str = "train",
    known: Collection[str] | None = None,
    schema: type | None = None,
) -> dict[str, Any]:
    """Read a TOML config file into a ``{option_name: value}`` map.

    Keys may be snake_case or kebab-case. Top-level keys apply to ``command``, as do the keys of
    a ``[<command>]`` table (which win); tables of other commands are ignored, so one file can
    configure several commands. A run's saved ``config.toml`` reads back this way.

    Args:
        path: the TOML file.
        command: the command being configured (its table is merged in).
        known: the option names the command accepts; any other key is an error.
        schema: the command's config dataclass; each value must have its field's type.

    Raises:
        InputError: the file is missing, unreadable or not valid TOML, or names an unknown
            option (the message suggests the closest known one), or gives an option a value of
            the wrong type.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TOML config file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (expected TOML)") from None

    options = {k: v for k, v in data.items() if k not in COMMAND_TABLES}
    own = data.get(command)
    if own is not None:
        if not isinstance(own, dict):
            raise InputError(f"{path}: '{command}' must be a table ([{command}])")
        options.update(own)
    out = {str(k).replace("-", "_"): v for k, v in options.items()}
    if known is not None:
        for key, value in out.items():
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                kind = "table" if isinstance(value, dict) else "option"
                raise InputError(f"{path}: unknown {kind} '{key}' for '{command}'{hint}")
    if schema is not None:
        check_types(path, out, schema)
    return out


def _accepts(expected: Any, value: Any) -> bool:
    """Whether a TOML value fits a config field annotation (ints are fine where floats are)."""
    origin = typing.get_origin(expected)
    if origin in (types.UnionType, typing.Union):
        return any(_accepts(arg, value) for arg in typing.get_args(expected))
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected in (str, Path):
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(expected)
        if len(args) == 2 and args[1] is Ellipsis:
            return isinstance(value, list) and all(_accepts(args[0], v) for v in value)
        return (
            isinstance(value, list)
            and len(value) == len(args)
            and all(_accepts(a, v) for a, v in zip(args, value, strict=True))
        )
    return True


def _type_name(expected: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string",
             Path: "a path string"}  # fmt: skip
    args = [a for a in typing.get_args(expected) if a is not type(None)] or [expected]
    return " or ".join(names.get(a, getattr(a, "__name__", str(a))) for a in args)


def check_types(path: Path, options: dict[str, Any], schema: type) -> None:
    """Raise a one-line InputError naming the file and key of the first mistyped value."""
    hints = typing.get_type_hints(schema)
    fields = {f.name for f in dataclasses.fields(schema)}
    for key, value in options.items():
        if key in fields and not _accepts(hints[key], value):
            raise InputError(f"{path}: '{key}' must be {_type_name(hints[key])}, not {value!r}")
