"""Reading ``--config FILE.toml`` for commands that accept one."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file into a ``{option_name: value}`` map.

    Keys may be snake_case or kebab-case; a ``[train]`` table is also accepted.

    Raises:
        InputError: the file is missing, unreadable or not valid TOML.
    """
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    if isinstance(data.get("train"), dict):
        data = {**{k: v for k, v in data.items() if k != "train"}, **data["train"]}
    return {str(k).replace("-", "_"): v for k, v in data.items()}
