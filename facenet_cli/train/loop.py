"""The training loop."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_train(config) -> None:  # type: ignore[no-untyped-def]
    raise FacenetError("facenet train is not built yet")
