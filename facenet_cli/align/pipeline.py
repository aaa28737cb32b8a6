"""The resumable, parallel alignment pipeline."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_align(config) -> None:  # type: ignore[no-untyped-def]
    raise FacenetError("facenet align is not built yet")
