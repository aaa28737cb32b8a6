"""Embeddings kept on disk by (model, image), so a rerun embeds only what changed.

``validate --all-checkpoints`` evaluates every checkpoint of a run on every benchmark; run again
after training went on, it should pay only for the new checkpoints. :class:`CachedEmbedding`
wraps an embedding function: each image of a batch is keyed by a digest of its crop's pixels
(what the model actually sees, so a changed file, crop size or pack is a new key), and only the
images without a stored embedding go through the model. The store of one model is one ``.npz``
file (digests and embeddings, no pickle) named by the model's own key: its checkpoint files'
names, sizes and modification times and the preprocessing, so new weights are a new store.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.evaluate.pairs_embedding import EmbedFn

_DIGEST = 16  # bytes of blake2b per image; 2^-64 collision odds per pair of images


def model_key(source: str | os.PathLike[str], settings: dict[str, Any]) -> str:
    """A key that changes whenever the model's files or the embedding settings change.

    Args:
        source: the checkpoint prefix, model file or folder the model was loaded from.
        settings: anything else that changes the embeddings (standardisation, crop, ...).
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
    else:
        files = sorted(source.parent.glob(source.name + "*"))
    parts = [str(source.resolve())]
    for p in files:
        st = p.stat()
        parts.append(f"{p.name}:{st.st_size}:{st.st_mtime_ns}")
    parts.append(json.dumps(settings, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


class CachedEmbedding:
    """An embedding function that reuses stored embeddings of identical crops.

    Attributes:
        path: the store file.
        computed: images embedded by the model in this process.
        reused: images answered from the store.
    """

    def __init__(self, embed: EmbedFn, path: str | os.PathLike[str]) -> None:
        self.embed_fn = embed
        self.path = Path(path)
        self.computed = 0
        self.reused = 0
        self._store: dict[bytes, np.ndarray] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    keys, values = data["keys"], data["values"]
                self._store = {k.tobytes(): v for k, v in zip(keys, values, strict=True)}
            except (OSError, ValueError, KeyError):
                self._store = {}  # a damaged store is only a lost cache: rebuild it

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.ascontiguousarray(images, dtype=np.float32)
        keys = [hashlib.blake2b(im.tobytes(), digest_size=_DIGEST).digest() for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self._store]
        if todo:
            fresh = np.asarray(self.embed_fn(images[todo]), dtype=np.float32)
            for i, row in zip(todo, fresh, strict=True):
                self._store[keys[i]] = row
            self._dirty = True
        self.computed += len(todo)
        self.reused += len(keys) - len(todo)
        return np.stack([self._store[k] for k in keys])

    def save(self) -> None:
        """Write the store (atomically) when it gained embeddings; a failed write is only a
        cache lost."""
        if not self._dirty or not self._store:
            return
        # uint8 rows, not an ``S16`` array: NumPy strips a bytes value's trailing zero bytes.
        keys = np.frombuffer(b"".join(self._store), np.uint8).reshape(-1, _DIGEST)
        values = np.stack(list(self._store.values()))
        tmp = self.path.with_name(self.path.name + ".tmp.npz")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, keys=keys, values=values)
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            tmp.unlink(missing_ok=True)
