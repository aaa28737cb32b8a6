"""The end-to-end demo."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_demo(config) -> None:  # type: ignore[no-untyped-def]
    raise FacenetError("facenet demo is not built yet")
