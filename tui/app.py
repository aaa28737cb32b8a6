"""The facenet board Textual app."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_board(config) -> int:  # type: ignore[no-untyped-def]
    raise FacenetError("facenet board is not built yet")
