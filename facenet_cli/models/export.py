"""Export of embedding models (SavedModel + .keras + preprocessing sidecar)."""

from __future__ import annotations

from pathlib import Path

from facenet_cli.errors import FacenetError


def run_export(source: Path, out: Path) -> None:
    raise FacenetError("facenet export is not built yet")
