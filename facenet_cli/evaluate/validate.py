"""The validate job."""

from __future__ import annotations

from facenet_cli.errors import FacenetError


def run_validate(config) -> None:  # type: ignore[no-untyped-def]
    raise FacenetError("facenet validate is not built yet")
