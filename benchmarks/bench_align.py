"""``facenet align`` versus a plain loop of the `mtcnn` package's ``detect_faces``, per image.

Images: demo photos (200-260 px, faces from the LFW subset), one in eight of them enlarged to a
1280x960 photo (large photos are where PNet's pyramid dominates); a second row aligns demo photos
enlarged to 4000x3000, a phone camera's size. Ours is the whole ``align`` job on a fresh output
folder (default ``--workers``): decode in a thread, batched detection, crops resized and written
as PNG in a thread, journal, box file. It runs in this process after a warm-up, as the baseline
runs with one ``MTCNN()`` built beforehand: neither side pays TensorFlow's import. The baseline is
a plain loop of ``detect_faces(path)`` (which decodes with TensorFlow), same constants (O-Net
threshold 0.7).

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

LARGE_EVERY = 8  # one photo in eight of the mix is a 1280x960 photo
LARGE_SIZE = (1280, 960)  # (width, height)
PHONE_SIZE = (4000, 3000)


def _enlarge(src: Path, dst: Path, size: tuple[int, int]) -> None:
    """``src`` scaled up to fill the height of a ``size`` photo, centred on its mean colour."""
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        w, h = size
        face = im.resize((round(im.width * h / im.height), h), Image.Resampling.BICUBIC)
        mean = tuple(int(v) for v in np.asarray(im).reshape(-1, 3).mean(axis=0))
    canvas = Image.new("RGB", size, mean)
    canvas.paste(face, ((w - face.width) // 2, 0))
    dst.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(dst, quality=92)


def _demo_photos(n: int) -> list[Path]:
    from facenet_cli.data.demo_faces import build_demo_photos

    demo = build_demo_photos()
    photos = sorted(demo.raw_train.glob("*/*.jpg")) + sorted(demo.raw_test.glob("*/*.jpg"))
    step = max(len(photos) // n, 1)
    return photos[::step][:n]


def _dataset(root: Path, n_demo: int) -> list[Path]:
    """``n_demo`` demo photos (spread over identities), every eighth one enlarged to 1280x960."""
    for k, p in enumerate(_demo_photos(n_demo)):
        dst = root / p.parent.name / p.name
        if k % LARGE_EVERY == LARGE_EVERY - 1:
            _enlarge(p, dst, LARGE_SIZE)
        else:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, dst)
    return sorted(root.glob("*/*.jpg"))


def _phone_dataset(root: Path, n: int) -> list[Path]:
    """``n`` demo photos enlarged to 4000x3000, the size of a phone camera's photo."""
    for p in _demo_photos(n):
        _enlarge(p, root / p.parent.name / p.name, PHONE_SIZE)
    return sorted(root.glob("*/*.jpg"))


def _central(boxes: np.ndarray, height: int, width: int) -> np.ndarray | None:
    from facenet_cli.align import geometry as geo

    if len(boxes) == 0:
        return None
    return boxes[geo.central_face_index(boxes, height, width)]


def _compare(
    name: str,
    work: Path,
    src: Path,
    detector,
    *,
    repeats: int,
    warmup: int,  # type: ignore[no-untyped-def]
) -> tuple[Comparison, float]:
    """``facenet align`` on ``src`` against the per-image loop; also the loop's CPU seconds."""
    from PIL import Image

    from facenet_cli.align import geometry as geo
    from facenet_cli.align.pipeline import align_dataset
    from facenet_cli.config import AlignConfig

    paths = sorted(src.glob("*/*.jpg"))
    rels = [f"{p.parent.name}/{p.name}" for p in paths]
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
        name,
        ours,
        baseline,
        ours_label="facenet align job (batched MTCNN, PNG writes, journal)",
        baseline_label="loop of mtcnn.MTCNN().detect_faces(path)",
        repeats=repeats,
        warmup=warmup,
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
    result.extra = {
        "mean_iou": f"{np.mean(ious):.4f}",
        "faces_only_ours": only_ours,
        "faces_only_baseline": only_base,
        "load_avg": f"{os.getloadavg()[0]:.1f}",
    }
    result.notes = f"mean IoU {np.mean(ious):.3f} over {len(ious)} faces"
    base_cpu = float(np.median(baseline_cpu))
    result.extra["baseline_cpu"] = f"{base_cpu:.1f} s"
    return result, base_cpu


def run(quick: bool = False) -> list[Comparison]:
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from mtcnn import MTCNN

    n_demo = 64 if quick else 200
    n_phone = 2 if quick else 6
    work = Path(tempfile.mkdtemp(prefix="bench_align_"))
    src = work / "in"
    paths = _dataset(src, n_demo)
    n_large = sum(1 for k in range(len(paths)) if k % LARGE_EVERY == LARGE_EVERY - 1)
    detector = MTCNN()
    mix, base_cpu = _compare(
        "align: facenet align vs per-image MTCNN.detect_faces",
        work,
        src,
        detector,
        repeats=1 if quick else 3,
        warmup=0 if quick else 1,
    )
    mix.notes = (
        f"{len(paths) - n_large} demo photos (200-260 px) + {n_large} photos of 1280x960 "
        f"(one in {LARGE_EVERY}); {mix.notes}"
    )
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
        mix.extra["cli_end_to_end"] = (
            f"{cli_s:.1f} s wall, {cli_cpu:.1f} s CPU (baseline loop {base_cpu:.1f} s CPU: "
            f"{base_cpu / cli_cpu:.1f}x)"
        )
    phone_src = work / "phone"
    _phone_dataset(phone_src, n_phone)
    phone, _ = _compare(
        "align: facenet align vs per-image MTCNN.detect_faces, 4000x3000 photos",
        work,
        phone_src,
        detector,
        repeats=1 if quick else 2,
        warmup=0,
    )
    phone.notes = f"{n_phone} demo photos enlarged to 4000x3000 (12 MP); {phone.notes}"
    shutil.rmtree(work, ignore_errors=True)
    return [mix, phone]
