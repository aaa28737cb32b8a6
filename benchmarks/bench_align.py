"""``facenet align`` versus a plain loop of the `mtcnn` package's ``detect_faces``, per image.

Images: demo photos (200-260 px, faces from the LFW subset) plus a few 1-2 MP photos made from
``skimage.data.astronaut()``. Ours is the whole ``align`` job on a fresh output folder (default
``--workers``): decode in a thread, batched detection, crops resized and written as PNG in a
thread, journal, box file. It runs in this process after a warm-up, as the baseline runs with one
``MTCNN()`` built beforehand: neither side pays TensorFlow's import. The baseline is a plain loop of
``detect_faces(path)`` (which decodes with TensorFlow), same constants (O-Net threshold 0.7).

Agreement: for every image, the face each side keeps by the original's rule (largest, most
central), compared by IoU; align runs with margin 0, so its box-file boxes are the detector's
boxes, clipped and truncated to pixels. An image where only one side finds a face counts IoU 0;
these come from the two JPEG decoders (TensorFlow's and Pillow's) giving slightly different
pixels, not from the detector: on identical pixels the two give the same boxes.
A full run also times one ``facenet align`` command end to end (a fresh process: TensorFlow
import, weights, everything) for reference.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Comparison, compare

LARGE_SIZES = [(1600, 1200), (1400, 1000), (1200, 900), (1000, 1000)]  # (width, height)


def _dataset(root: Path, n_demo: int) -> list[Path]:
    """Copy ``n_demo`` demo photos (spread over identities) and add large astronaut photos."""
    from PIL import Image
    from skimage import data

    from facenet_cli.data.demo_faces import build_demo_photos

    demo = build_demo_photos()
    photos = sorted(demo.raw_train.glob("*/*.jpg")) + sorted(demo.raw_test.glob("*/*.jpg"))
    step = max(len(photos) // n_demo, 1)
    for p in photos[::step][:n_demo]:
        dst = root / p.parent.name / p.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    astro = Image.fromarray(data.astronaut())
    rng = np.random.default_rng(0)
    (root / "astronaut").mkdir(parents=True, exist_ok=True)
    for k, (w, h) in enumerate(LARGE_SIZES):
        canvas = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(40, 200, 3)))
        side = int(min(w, h) * rng.uniform(0.5, 0.9))
        face = astro.resize((side, side), Image.Resampling.BILINEAR)
        canvas.paste(face, (int(rng.integers(0, w - side)), int(rng.integers(0, h - side))))
        canvas.save(root / "astronaut" / f"astronaut_{k + 1:04d}.jpg", quality=92)
    return sorted(root.glob("*/*.jpg"))


def _central(boxes: np.ndarray, height: int, width: int) -> np.ndarray | None:
    from facenet_cli.align import geometry as geo

    if len(boxes) == 0:
        return None
    return boxes[geo.central_face_index(boxes, height, width)]


def run(quick: bool = False) -> list[Comparison]:
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from mtcnn import MTCNN
    from PIL import Image

    from facenet_cli.align import geometry as geo
    from facenet_cli.align.pipeline import align_dataset
    from facenet_cli.config import AlignConfig

    n_demo = 60 if quick else 200
    work = Path(tempfile.mkdtemp(prefix="bench_align_"))
    src = work / "in"
    paths = _dataset(src, n_demo)
    rels = [f"{p.parent.name}/{p.name}" for p in paths]
    detector = MTCNN()
    baseline_boxes: dict[str, np.ndarray | None] = {}
    ours_boxes: dict[str, np.ndarray | None] = {}
    runs = [0]

    def ours() -> None:
        out = work / f"out{runs[0]}"
        runs[0] += 1
        cfg = AlignConfig(input_dir=src, output_dir=out, image_size=160, margin=0, workers=0)
        summary = align_dataset(cfg, quiet=True)
        assert summary.processed == len(paths)
        ours_boxes.clear()
        for line in (out / "bounding_boxes.txt").read_text().splitlines():
            parts = line.split(" ")
            rel = "/".join(Path(parts[0]).parts[-2:])
            box = np.array([float(v) for v in parts[1:]]) if len(parts) == 5 else None
            ours_boxes[rel.rsplit(".", 1)[0]] = box
        shutil.rmtree(out)

    baseline_cpu: list[float] = []

    def baseline() -> None:
        cpu0 = time.process_time()
        baseline_boxes.clear()
        for path, rel in zip(paths, rels, strict=True):
            faces = detector.detect_faces(str(path), threshold_onet=0.7, box_format="xyxy")
            boxes = np.array([f["box"] for f in faces], dtype=float).reshape(-1, 4)
            with Image.open(path) as im:
                w, h = im.size
            baseline_boxes[rel.rsplit(".", 1)[0]] = _central(boxes, h, w)
        baseline_cpu.append(time.process_time() - cpu0)

    result = compare(
        "align: facenet align vs per-image MTCNN.detect_faces",
        ours,
        baseline,
        ours_label="facenet align job (batched MTCNN, PNG writes, journal)",
        baseline_label="loop of mtcnn.MTCNN().detect_faces(path)",
        repeats=1 if quick else 3,
        warmup=0 if quick else 1,
        units=len(paths),
        unit_name="images",
        target=">= 2x, mean IoU >= 0.9",
    )
    ious, only_ours, only_base = [], 0, 0
    for key, base in baseline_boxes.items():
        mine = ours_boxes.get(key)
        if base is None and mine is None:
            continue
        if base is None or mine is None:
            only_ours += base is None
            only_base += mine is None
            ious.append(0.0)
            continue
        ious.append(geo.box_iou(base, mine))
    result.notes = (
        f"{n_demo} demo photos + {len(LARGE_SIZES)} photos of 1-2 MP; "
        f"mean IoU {np.mean(ious):.3f} over {len(ious)} faces"
    )
    result.extra = {
        "mean_iou": f"{np.mean(ious):.4f}",
        "faces_only_ours": only_ours,
        "faces_only_baseline": only_base,
    }
    base_cpu = float(np.median(baseline_cpu))
    result.extra["baseline_cpu"] = f"{base_cpu:.1f} s"
    if not quick:
        # One fresh `facenet align` process, start to finish (TensorFlow import included), in CPU
        # seconds as well: on a shared host the CPU time is the steadier figure.
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "facenet_cli.cli",
                "align",
                str(src),
                str(work / "cli"),
                "--margin",
                "0",
            ],
            check=True,
            capture_output=True,
        )
        cli_s = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cli_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        result.extra["cli_end_to_end"] = (
            f"{cli_s:.1f} s wall, {cli_cpu:.1f} s CPU (baseline loop {base_cpu:.1f} s CPU: "
            f"{base_cpu / cli_cpu:.1f}x)"
        )
    shutil.rmtree(work, ignore_errors=True)
    return [result]
