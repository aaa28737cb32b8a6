"""``facenet embed`` throughput versus the model's raw forward pass.

Ours: ``embed_folder`` on a folder of aligned PNG crops - list the identities, read each file's
signature, decode and centre-crop with ``tf.data``, embed (standardise, forward, normalise) and
write the ``.npz`` atomically (a fresh file each time, so nothing is reused). Baseline: the same
Keras model's compiled forward pass over as many images already in memory, batch for batch.
The ratio is the share of the raw forward speed the command keeps (target >= 0.85x).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from benchmarks.bench_embedding import _write_images
from benchmarks.harness import Comparison, compare

IMAGE_SIZE = 160
BATCH = 100


def _compare(model_def: str, identities: int, repeats: int) -> Comparison:
    import tensorflow as tf

    from facenet_cli.models.loading import EmbeddingModel
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.use.embed_job import embed_folder

    info = ModelInfo(model_def, 128, IMAGE_SIZE, "per_image")
    keras_model = create_model(model_def, embedding_size=128, image_size=IMAGE_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "aligned"
        _write_images(root, identities=identities, per_identity=4)
        model = EmbeddingModel(info, Path(tmp), keras_model)
        out = Path(tmp) / "embeddings.npz"

        def command() -> int:
            out.unlink(missing_ok=True)
            return embed_folder(model, root, out, batch_size=BATCH).nrof_embedded

        n = command()
        rng = np.random.default_rng(1)
        batches = [
            tf.constant(
                rng.uniform(0, 1, (min(BATCH, n - i), IMAGE_SIZE, IMAGE_SIZE, 3)), tf.float32
            )
            for i in range(0, n, BATCH)
        ]
        spec = tf.TensorSpec((None, IMAGE_SIZE, IMAGE_SIZE, 3), tf.float32)

        @tf.function(input_signature=[spec], reduce_retracing=True)
        def forward(x):
            return keras_model(x, training=False)

        def raw_forward() -> None:
            for b in batches:
                forward(b).numpy()

        return compare(
            f"facenet embed throughput, {model_def} {IMAGE_SIZE}px, batch {BATCH}",
            command,
            raw_forward,
            ours_label="embed_folder: list -> PNG -> tf.data -> embed -> atomic .npz",
            baseline_label="raw model forward on in-memory tensors",
            repeats=repeats,
            units=n,
            unit_name="img",
            target=">= 0.85x",
            notes=f"{n} PNG images in {identities} identity folders; a fresh .npz each time",
        )


def run(quick: bool = False) -> list[Comparison]:
    if quick:
        return [_compare("small", identities=50, repeats=2)]
    return [_compare("small", identities=200, repeats=5)]
