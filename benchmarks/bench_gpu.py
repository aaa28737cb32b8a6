"""The GPU figures in one run: ``python -m benchmarks gpu`` (about 6 minutes on one GPU).

Rows (each a side-by-side comparison, so each has a ratio):

- triplet training images/s of Inception-ResNet-v1 at 160 px, batch 90, through the training
  loop's own ``TripletObjective.train_step``: mixed precision and XLA, each against fp32;
- one 45 x 40 selection round: embedding its 1,800 images (the graph's ``embed``) plus
  ``select_triplets``, against the same embedding plus the original's per-pair selection loop;
- pipeline efficiency of ``Trainer.train_steps`` (``bench_train_pipeline.measure``);
- ``facenet align`` images/s on 500 photos against a per-image ``mtcnn`` loop on 50 of them;
- validation images/s (``bench_embedding.measure``: PNG -> tf.data -> embed -> metrics) against
  the raw forward;
- peak GPU memory of each stage (TensorFlow's allocator statistics), in the notes.

``--smoke`` runs the same code at tiny sizes (the ``small`` model at 32 px, a few images) on the
CPU and records nothing: the test suite runs it so that this script keeps working between the
times a GPU machine is available.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Comparison, compare


@dataclass(frozen=True)
class Sizes:
    model_def: str
    image_size: int
    batch_size: int  # a multiple of 3 (triplets)
    people: int
    per_person: int
    train_repeats: int
    round_steps: int
    rounds: int
    align_photos: int
    align_baseline_photos: int
    validation_identities: int
    repeats: int  # of each side of a comparison
    warmup: int


FULL = Sizes("inception_resnet_v1", 160, 90, 45, 40, train_repeats=10, round_steps=100,
             rounds=2, align_photos=500, align_baseline_photos=50,
             validation_identities=250, repeats=3, warmup=1)  # fmt: skip
SMOKE = Sizes("small", 32, 12, 4, 3, train_repeats=1, round_steps=2, rounds=1,
              align_photos=4, align_baseline_photos=2, validation_identities=8,
              repeats=1, warmup=0)  # fmt: skip

# Training variants measured against fp32: label -> TrainConfig fields.
VARIANTS: dict[str, dict[str, bool]] = {
    "mixed precision": {"mixed_precision": True},
    "XLA": {"xla": True},
}


def _gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _reset_peak() -> None:
    import tensorflow as tf

    if _gpu():
        tf.config.experimental.reset_memory_stats("GPU:0")


def _peak(result: Comparison) -> Comparison:
    """Note the stage's peak GPU memory (allocator statistics) and the host load."""
    import tensorflow as tf

    if _gpu():
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        result.extra["peak GPU memory"] = f"{peak / 2**30:.2f} GiB"
    result.extra["load avg"] = f"{os.getloadavg()[0]:.1f}"
    return result


def _graph(sizes: Sizes, base: Path, **fields: Any) -> Any:
    from facenet_cli.config import TrainConfig
    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.train.graph import TrainingGraph
    from facenet_cli.train.objectives.triplet import TripletObjective
    from facenet_cli.train.reporting import NullReporter

    config = TrainConfig(
        logs_base_dir=base / "logs", models_base_dir=base / "models", data_dir=str(base),
        model_def=sizes.model_def, image_size=sizes.image_size, batch_size=sizes.batch_size,
        people_per_batch=sizes.people, images_per_person=sizes.per_person,
        learning_rate=0.01, **fields,
    )  # fmt: skip
    info = ModelInfo(sizes.model_def, config.embedding_size, sizes.image_size, "per_image")
    graph = TrainingGraph(config, info, TripletObjective(config, NullReporter()))
    assert graph.xla == bool(fields.get("xla")), "XLA as asked (one device)"
    return graph.objective  # its train_step and embed are the loop's


def _sync(out: Any) -> None:
    np.asarray(out["loss"] if isinstance(out, dict) else out)


def training(
    sizes: Sizes, base: Path, fp32: Any, variants: dict[str, dict[str, bool]]
) -> list[Comparison]:
    """Images/s of the loop's train step per variant, each alternated with ``fp32``'s."""
    import tensorflow as tf

    images = tf.random.uniform((sizes.batch_size, sizes.image_size, sizes.image_size, 3))
    step = tf.constant(0, tf.int64)
    results = []
    for label, fields in variants.items():
        _reset_peak()  # the peak includes the fp32 graph's weights, built before
        graph = _graph(sizes, base, **fields)
        first = time.perf_counter()
        _sync(graph.train_step(images, step))
        compile_s = time.perf_counter() - first

        def run_steps(g: Any = graph) -> None:
            for _ in range(sizes.train_repeats):
                out = g.train_step(images, step)
            _sync(out)

        result = compare(
            f"{sizes.model_def} {sizes.image_size}px triplet training, {label} vs fp32, "
            f"batch {sizes.batch_size}",
            run_steps,
            lambda: run_steps(fp32),
            ours_label=f"TripletObjective.train_step ({label})",
            baseline_label="TripletObjective.train_step (fp32)",
            repeats=sizes.repeats,
            warmup=max(sizes.warmup, 1),  # the fp32 step's first call traces it
            units=sizes.batch_size * sizes.train_repeats,
            unit_name="img",
        )
        result.extra["first call"] = f"{compile_s:.1f} s"
        results.append(_peak(result))
        del graph
    return results


def selection(sizes: Sizes, graph: Any) -> Comparison:
    """One selection round: embed people x per_person images, then choose the triplets."""
    import tensorflow as tf

    from benchmarks.bench_triplets import original_select_triplets
    from facenet_cli.train.triplets import select_triplets

    n = sizes.people * sizes.per_person
    counts = [sizes.per_person] * sizes.people
    batches = [
        tf.random.uniform((min(sizes.batch_size, n - i), sizes.image_size, sizes.image_size, 3))
        for i in range(0, n, sizes.batch_size)
    ]

    def embed() -> np.ndarray:
        return np.concatenate([np.asarray(graph.embed(b)) for b in batches])

    rng = np.random.default_rng(0)
    rs = np.random.RandomState(0)

    def ours() -> None:
        select_triplets(embed(), counts, sizes.people, 0.2, "random", rng)

    def baseline() -> None:
        original_select_triplets(embed(), counts, sizes.people, 0.2, rs)

    result = compare(
        f"selection round {sizes.people}x{sizes.per_person} ({sizes.model_def} "
        f"{sizes.image_size}px): embed + select_triplets",
        ours,
        baseline,
        ours_label="graph.embed + vectorised select_triplets",
        baseline_label="graph.embed + the original's per-pair loop",
        repeats=sizes.repeats,
        warmup=sizes.warmup,
        units=n,
        unit_name="img",
    )
    t0 = time.perf_counter()
    emb = embed()
    embed_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    select_triplets(emb, counts, sizes.people, 0.2, "random", rng)
    result.extra["embed"] = f"{embed_s:.2f} s"
    result.extra["select"] = f"{time.perf_counter() - t0:.3f} s"
    return _peak(result)


def pipeline(sizes: Sizes) -> Comparison:
    from benchmarks.bench_train_pipeline import measure

    settings = dict(
        model_def=sizes.model_def, image_size=sizes.image_size, batch_size=sizes.batch_size,
        people_per_batch=sizes.people, images_per_person=sizes.per_person,
        round_steps=sizes.round_steps, rounds=sizes.rounds, raw_calls=sizes.train_repeats,
    )  # fmt: skip
    _reset_peak()
    return _peak(measure(settings, _gpu()))


def _align_photos(root: Path, n: int) -> Path:
    """``n`` 250 x 250 JPEG photos of scikit-image's astronaut at varied sizes and positions."""
    from PIL import Image
    from skimage import data

    astronaut = Image.fromarray(data.astronaut())
    rng = np.random.default_rng(0)
    for k in range(n):
        folder = root / f"p{k % 50:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        side = int(rng.integers(130, 250))
        canvas = Image.new("RGB", (250, 250), tuple(int(v) for v in rng.integers(40, 200, 3)))
        face = astronaut.resize((side * 2, side * 2), Image.Resampling.BILINEAR)
        # The face is in the upper middle of the astronaut photo.
        crop = face.crop((side // 2, 0, side // 2 + side, side))
        canvas.paste(crop, (int(rng.integers(0, 251 - side)), int(rng.integers(0, 251 - side))))
        canvas.save(folder / f"p{k % 50:02d}_{k:04d}.jpg", quality=92)
    return root


def align(sizes: Sizes, base: Path) -> Comparison:
    """``align_dataset`` per image against the package's per-image loop on a subset."""
    from mtcnn import MTCNN

    from facenet_cli.align.pipeline import align_dataset
    from facenet_cli.config import AlignConfig

    src = _align_photos(base / "photos", sizes.align_photos)
    paths = sorted(src.glob("*/*.jpg"))
    subset = paths[: sizes.align_baseline_photos]
    detector = MTCNN()
    runs = [0]
    _reset_peak()

    def ours() -> None:
        out = base / f"aligned{runs[0]}"
        runs[0] += 1
        config = AlignConfig(input_dir=src, output_dir=out, image_size=160, workers=1)
        summary = align_dataset(config, quiet=True)
        assert summary.processed == len(paths), summary
        shutil.rmtree(out)

    def baseline() -> None:
        for path in subset:
            detector.detect_faces(str(path), threshold_onet=0.7)

    result = compare(
        f"align: facenet align vs per-image MTCNN.detect_faces, {len(paths)} photos",
        ours,
        baseline,
        ours_label=f"facenet align job on {len(paths)} photos",
        baseline_label=f"mtcnn detect_faces loop on {len(subset)} of them",
        repeats=sizes.repeats,
        warmup=sizes.warmup,
    )
    # Per image, so that the two sides' different photo counts compare.
    result.ours_s = [t / len(paths) for t in result.ours_s]
    result.baseline_s = [t / len(subset) for t in result.baseline_s]
    result.unit_name = "image"
    result.notes = "250x250 astronaut photos; times per image"
    return _peak(result)


def validation(sizes: Sizes) -> Comparison:
    from benchmarks.bench_embedding import measure

    _reset_peak()
    return _peak(measure(sizes.model_def, sizes.validation_identities, repeats=sizes.repeats,
                         image_size=sizes.image_size))  # fmt: skip


def run(quick: bool = False, smoke: bool = False) -> list[Comparison]:
    """All GPU rows; ``smoke``: tiny sizes on whatever device there is (the CPU in tests)."""
    sizes = SMOKE if smoke else FULL
    if not smoke and not _gpu():
        raise SystemExit("python -m benchmarks gpu: no GPU visible (use --smoke to try it here)")
    started = time.perf_counter()
    base = Path(tempfile.mkdtemp(prefix="bench_gpu_"))
    _reset_peak()
    fp32 = _graph(sizes, base / "train")
    stages: list[Callable[[], list[Comparison]]] = [
        lambda: training(sizes, base / "train", fp32, VARIANTS),
        lambda: [selection(sizes, fp32)],
        lambda: [pipeline(sizes)],
        lambda: [align(sizes, base / "align")],
        lambda: [validation(sizes)],
    ]
    results: list[Comparison] = []
    try:
        for stage in stages:
            t0 = time.perf_counter()
            rows = stage()
            for r in rows:
                r.extra["stage"] = f"{time.perf_counter() - t0:.0f} s"
            results += rows
    finally:
        shutil.rmtree(base, ignore_errors=True)
    total = time.perf_counter() - started
    device = "GPU" if _gpu() else "CPU"
    for r in results:
        r.notes = "; ".join(x for x in (r.notes, f"{device}, whole script {total:.0f} s") if x)
    return results
