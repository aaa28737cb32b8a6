"""Embedding files: one ``.npz`` of embeddings, relative paths and identity labels.

Written atomically (a temporary file renamed over the target) and read without pickle. A JSON
header in the file records the model and settings the embeddings were made with and each
image's size and modification time, so a rerun reuses the rows whose inputs are unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError, StorageError

EMBEDDINGS_FORMAT = "facenet-embeddings"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EmbeddingSet:
    """Embeddings of a folder of identities.

    Attributes:
        embeddings: ``(N, D)`` float32, L2-normalised.
        paths: ``(N,)`` image paths relative to the data folder (POSIX separators).
        labels: ``(N,)`` int index into ``class_names``.
        class_names: identity (sub-folder) names.
        signatures: ``(N,)`` ``size:mtime_ns`` of each image when it was embedded.
        meta: what the embeddings were made with (model, alignment, skipped photos).
    """

    embeddings: np.ndarray
    paths: np.ndarray
    labels: np.ndarray
    class_names: np.ndarray
    signatures: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.paths))


def file_signature(path: Path) -> str:
    """``size:mtime_ns`` of a file (changes when the file is rewritten)."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def _text_array(values: Any) -> np.ndarray:
    values = [str(v) for v in values]
    return np.array(values, dtype=np.str_) if values else np.zeros(0, dtype="<U1")


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write arrays to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise StorageError(f"{path}: cannot write ({blocked} is a file, not a folder)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def check_replaceable(path: Path, kind: str) -> None:
    """Refuse to write a ``kind`` file over a facenet file of another kind.

    A classifier is not replaced by embeddings (or the other way round) because of a mistyped
    ``--out``. A file of the same kind, a damaged one or any other file is replaced as usual.

    Raises:
        InputError: ``path`` holds a facenet file of another kind.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"])) if "meta" in data.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return
    found = meta.get("format") if isinstance(meta, dict) else None
    if isinstance(found, str) and found.startswith("facenet-") and found != kind_format(kind):
        raise InputError(
            f"{path}: is a facenet {found.removeprefix('facenet-')} file; not replaced by the "
            f"{kind} (remove it or choose another --out)"
        )


def load_npz(
    path: Path, kind: str, required: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a ``.npz`` written by :func:`save_npz_atomic` with a ``meta`` JSON header.

    Raises:
        InputError: a missing, damaged or foreign file (one line naming it and why).
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: a folder, not a {kind} file")
    if not path.is_file():
        raise InputError(f"{path}: {kind} file not found")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not a readable {kind} file (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"{path}: not a readable {kind} file ({_first(exc)})") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except (KeyError, ValueError):
        raise InputError(f"{path}: not a {kind} file (no facenet header)") from None
    if not isinstance(meta, dict) or meta.get("format") != kind_format(kind):
        raise InputError(f"{path}: not a {kind} file (format {meta.get('format')!r})")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"{path}: {kind} file version {meta['version']} is newer than this facenet"
        )
    missing = [k for k in required if k not in arrays]
    if missing:
        raise InputError(f"{path}: damaged {kind} file (missing {', '.join(missing)})")
    return arrays, meta


def kind_format(kind: str) -> str:
    return f"facenet-{kind}"


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def write_embeddings(path: Path, data: EmbeddingSet) -> Path:
    """Write an :class:`EmbeddingSet` atomically."""
    meta = {**data.meta, "format": EMBEDDINGS_FORMAT, "version": FORMAT_VERSION}
    return save_npz_atomic(
        path,
        {
            "embeddings": np.asarray(data.embeddings, np.float32),
            "paths": _text_array(data.paths),
            "labels": np.asarray(data.labels, np.int64),
            "class_names": _text_array(data.class_names),
            "signatures": _text_array(data.signatures),
            "meta": np.array(json.dumps(meta)),
        },
    )


def read_embeddings(path: Path) -> EmbeddingSet:
    """Read an embeddings file.

    Raises:
        InputError: a missing, damaged or foreign file, or arrays of inconsistent lengths.
    """
    names = ("embeddings", "paths", "labels", "class_names", "signatures")
    arrays, meta = load_npz(path, "embeddings", names)
    n = len(arrays["paths"])
    emb = arrays["embeddings"]
    if (
        emb.ndim != 2
        or len(emb) != n
        or len(arrays["labels"]) != n
        or len(arrays["signatures"]) != n
    ):
        raise InputError(f"{path}: damaged embeddings file (arrays of different lengths)")
    labels = arrays["labels"].astype(np.int64)
    if n and (labels.min() < 0 or labels.max() >= len(arrays["class_names"])):
        raise InputError(f"{path}: damaged embeddings file (labels outside the class list)")
    return EmbeddingSet(
        emb, arrays["paths"], labels, arrays["class_names"], arrays["signatures"], meta
    )
