"""LFW pairs files: read, write and make."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_make_pairs(config) -> None:  # type: ignore[no-untyped-def]
    raise FacenetError("making pairs files is not built yet")
