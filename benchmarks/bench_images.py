"""Image work: OpenCV against Pillow / TensorFlow, and listing class folders by content.

Rows (each side alternated in one run, ratio = baseline / ours):
- decode to RGB, OpenCV (``images.decode_bytes``) vs Pillow with EXIF transpose (the previous
  align decoder), on demo photos and on 250x250 JPEGs (bytes in memory: no disk in the timing);
- crop + resize to 160 px and the similarity warp, OpenCV vs Pillow, on demo photos;
- ``tf.data`` decode of 250x250 JPEGs: ours (TensorFlow for the common formats, OpenCV for the
  rest) vs TensorFlow's decoder alone, and vs OpenCV for every file (a numpy function);
- listing + decoding N small files in class folders: ours (names with an image extension are
  not opened to list them) vs opening every file to sniff its content, then decoding.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.harness import Comparison, compare


def _load() -> str:
    return f"load avg {os.getloadavg()[0]:.1f}"


def _demo_bytes(n: int) -> list[bytes]:
    from facenet_cli.data.demo_faces import build_demo_photos

    demo = build_demo_photos()
    photos = sorted(demo.raw_train.glob("*/*.jpg"))[:n]
    return [p.read_bytes() for p in photos]


def _jpegs_250(n: int) -> list[bytes]:
    from PIL import Image
    from skimage import data

    astro = data.astronaut()
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        y, x = rng.integers(0, 512 - 250, 2)
        buf = io.BytesIO()
        Image.fromarray(astro[y : y + 250, x : x + 250]).save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _pillow_decode(data: bytes) -> np.ndarray:
    from PIL import Image, ImageOps

    from facenet_cli.data.images import to_rgb8

    with Image.open(io.BytesIO(data)) as raw:
        raw.load()
        return to_rgb8(ImageOps.exif_transpose(raw))


def _decode_rows(name: str, blobs: list[bytes], repeats: int) -> Comparison:
    from facenet_cli.data.images import decode_bytes

    return compare(
        f"decode to RGB: OpenCV vs Pillow, {name}",
        lambda: [decode_bytes(b) for b in blobs],
        lambda: [_pillow_decode(b) for b in blobs],
        ours_label="cv2.imdecode IMREAD_COLOR_RGB",
        baseline_label="PIL open + exif_transpose + convert",
        repeats=repeats,
        units=len(blobs),
        unit_name="images",
        notes=f"{len(blobs)} images; {_load()}",
    )


def _geometry_rows(blobs: list[bytes], repeats: int) -> list[Comparison]:
    from PIL import Image

    from facenet_cli.align import geometry as geo
    from facenet_cli.align import imageio
    from facenet_cli.data.images import decode_bytes

    images = [decode_bytes(b) for b in blobs]
    boxes, marks = [], []
    for im in images:
        h, w = im.shape[:2]
        boxes.append(np.array([w // 5, h // 6, w - w // 5, h - h // 8]))
        # Plausible landmarks: eyes, nose, mouth corners inside the box.
        marks.append(np.array([[0.35 * w, 0.4 * h], [0.65 * w, 0.4 * h], [0.5 * w, 0.55 * h],
                               [0.4 * w, 0.7 * h], [0.6 * w, 0.7 * h]]))  # fmt: skip

    def pil_resize() -> None:
        for im, bb in zip(images, boxes, strict=True):
            crop = im[bb[1] : bb[3], bb[0] : bb[2]]
            np.asarray(Image.fromarray(crop).resize((160, 160), Image.Resampling.BILINEAR))

    def pil_warp() -> None:
        for im, lm in zip(images, marks, strict=True):
            dst = geo.template_points(160, 32)
            inv = geo.invert_affine(geo.similarity_transform(lm, dst))
            np.asarray(Image.fromarray(im).transform((160, 160), Image.Transform.AFFINE,
                       tuple(inv.ravel()), resample=Image.Resampling.BILINEAR))  # fmt: skip

    n = len(images)
    return [
        compare(
            "crop + resize to 160 px: OpenCV vs Pillow, demo photos",
            lambda: [
                imageio.crop_resize(im, bb, 160) for im, bb in zip(images, boxes, strict=True)
            ],
            pil_resize,
            ours_label="imageio.crop_resize",
            baseline_label="PIL resize BILINEAR",
            repeats=repeats,
            units=n,
            unit_name="crops",
            notes=f"{n} demo photos; {_load()}",
        ),
        compare(
            "similarity warp to 160 px: OpenCV vs Pillow, demo photos",
            lambda: [
                imageio.warp_similarity(im, lm, 160, 32)
                for im, lm in zip(images, marks, strict=True)
            ],
            pil_warp,
            ours_label="imageio.warp_similarity",
            baseline_label="PIL transform AFFINE BILINEAR",
            repeats=repeats,
            units=n,
            unit_name="crops",
            notes=f"{n} demo photos; {_load()}",
        ),
    ]


def _tf_rows(blobs: list[bytes], repeats: int) -> list[Comparison]:
    import tensorflow as tf

    from facenet_cli.data.pipeline import _decode_other, decode_image

    folder = Path(tempfile.mkdtemp(prefix="bench_images_tf_"))
    paths = []
    for k, b in enumerate(blobs):
        path = folder / f"{k:05d}.jpg"
        path.write_bytes(b)
        paths.append(str(path))

    def run(fn) -> None:  # type: ignore[no-untyped-def]
        ds = tf.data.Dataset.from_tensor_slices(paths)
        ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(64)
        for _ in ds:
            pass

    def tf_only(path: tf.Tensor) -> tf.Tensor:
        contents = tf.io.read_file(path)
        return tf.image.resize(
            tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False),
            (160, 160),
        )

    def cv_all(path: tf.Tensor) -> tf.Tensor:
        contents = tf.io.read_file(path)
        image = tf.numpy_function(_decode_other, [contents, path], tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, (160, 160))

    def ours(path: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(decode_image(path), (160, 160))

    magics = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM")

    def previous(path: tf.Tensor) -> tf.Tensor:
        # The decoder before content routing: a magic-number assertion, then TensorFlow's decoder.
        contents = tf.io.read_file(path)
        head = tf.strings.substr(
            tf.strings.join([tf.strings.substr(contents, 0, 12), b"\0" * 12]), 0, 12
        )
        ok = tf.constant(False)
        for magic in magics:
            ok = tf.logical_or(ok, tf.equal(tf.strings.substr(head, 0, len(magic)), magic))
        check = tf.debugging.Assert(ok, ["unreadable image:", path], summarize=1)
        with tf.control_dependencies([check]):
            image = tf.io.decode_image(
                contents, channels=3, dtype=tf.uint8, expand_animations=False
            )
        image.set_shape([None, None, 3])
        return tf.image.resize(image, (160, 160))

    def with_fallback(path: tf.Tensor) -> tf.Tensor:
        return tf.image.resize(decode_image(path, fallback=True), (160, 160))

    n = len(paths)
    common = dict(repeats=repeats, units=n, unit_name="images")
    rows = [
        compare(
            "tf.data decode, 250x250 JPEG: decode_image vs the previous decode_image",
            lambda: run(ours),
            lambda: run(previous),
            ours_label="decode_image (no fallback needed: all named .jpg)",
            baseline_label="magic assertion + tf.io.decode_image",
            notes=f"{n} files; {_load()}",
            **common,  # type: ignore[arg-type]
        ),
        compare(
            "tf.data decode, 250x250 JPEG: without vs with the fallback decoder in the graph",
            lambda: run(ours),
            lambda: run(with_fallback),
            ours_label="decode_image(fallback=False)",
            baseline_label="decode_image(fallback=True): cond + numpy_function(OpenCV)",
            notes=f"{n} files; the fallback is on only for datasets that need it; {_load()}",
            **common,  # type: ignore[arg-type]
        ),
        compare(
            "tf.data decode, 250x250 JPEG: TensorFlow's decoder vs OpenCV for every file",
            lambda: run(tf_only),
            lambda: run(cv_all),
            ours_label="tf.io.decode_image",
            baseline_label="numpy_function(cv2.imdecode)",
            notes=f"{n} files; kept: TensorFlow for JPEG/PNG/GIF/BMP/WebP; {_load()}",
            **common,  # type: ignore[arg-type]
        ),
    ]
    for p in paths:
        os.unlink(p)
    folder.rmdir()
    return rows


def _listing_row(n_files: int, repeats: int) -> Comparison:
    from facenet_cli.data.images import is_image, read_image, scan_class_folder

    root = Path(tempfile.mkdtemp(prefix="bench_images_list_"))
    tiny = _jpegs_250(1)[0]
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(tiny)).resize((32, 32)).save(buf, "JPEG", quality=85)
    small = buf.getvalue()
    per_class = 100
    t0 = time.perf_counter()
    folders = []
    for c in range(n_files // per_class):
        folder = root / f"id{c:05d}"
        folder.mkdir()
        folders.append(folder)
        for i in range(per_class):
            (folder / f"id{c:05d}_{i + 1:04d}.jpg").write_bytes(small)
    made = time.perf_counter() - t0

    def ours() -> None:
        for folder in folders:
            for path in scan_class_folder(folder).images:
                read_image(path)

    def sniff_all() -> None:
        for folder in folders:
            names = sorted(os.listdir(folder))
            images = [folder / n for n in names if is_image(folder / n)]
            for path in images:
                read_image(path)

    result = compare(
        f"list + decode {n_files} small JPEGs in {len(folders)} class folders",
        ours,
        sniff_all,
        ours_label="scan_class_folder (names with an image extension not opened) + decode",
        baseline_label="open every file to sniff its content, then decode",
        repeats=repeats,
        warmup=1,
        units=n_files,
        unit_name="files",
        notes=f"32x32 JPEGs, files made in {made:.0f} s, warm page cache; {_load()}",
    )
    t0 = time.perf_counter()
    for folder in folders:
        scan_class_folder(folder)
    result.extra["listing_alone"] = f"{time.perf_counter() - t0:.2f} s"
    import shutil

    shutil.rmtree(root, ignore_errors=True)
    return result


def run(quick: bool = False) -> list[Comparison]:
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    repeats = 3 if quick else 5
    demo = _demo_bytes(100 if quick else 300)
    jpegs = _jpegs_250(100 if quick else 300)
    rows = [
        _decode_rows("demo photos", demo, repeats),
        _decode_rows("250x250 JPEGs", jpegs, repeats),
    ]
    rows += _geometry_rows(demo, repeats)
    rows += _tf_rows(jpegs * (1 if quick else 3), repeats + 2)
    rows.append(_listing_row(10_000 if quick else 100_000, 3 if quick else 3))
    return rows
