"""Reading ``--config FILE.toml`` for commands that accept one."""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError

# Tables named after a command configure that command; a file may hold several of them.
COMMAND_TABLES = frozenset({"align", "train", "validate", "pairs", "board", "demo", "export"})


def read_config_file(
    path: Path, command: str = "train", known: Collection[str] | None = None
) -> dict[str, Any]:
    """Read a TOML config file into a ``{option_name: value}`` map.

    Keys may be snake_case or kebab-case. Top-level keys apply to ``command``, as do the keys of
    a ``[<command>]`` table (which win); tables of other commands are ignored, so one file can
    configure several commands. A run's saved ``config.toml`` reads back this way.

    Args:
        path: the TOML file.
        command: the command being configured (its table is merged in).
        known: the option names the command accepts; any other key is an error.

    Raises:
        InputError: the file is missing, unreadable or not valid TOML, or names an unknown
            option (the message suggests the closest known one).
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
    return out
