"""Alignment of the built-in demo photos (real LFW faces on textured backgrounds)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.align.pipeline import align_dataset
from facenet_cli.config import AlignConfig


def test_demo_photos_are_aligned_at_the_demo_settings(tmp_path: Path) -> None:
    from facenet_cli.data import demo_faces as demo

    faces = demo.demo_faces()
    src = tmp_path / "raw"
    for identity in (3, 41, 77):
        folder = src / demo.identity_name(identity)
        folder.mkdir(parents=True)
        for k in range(1, 4):
            photo = demo.synthesize_photo(faces[identity], demo.photo_rng(0, identity, k))
            name = f"{demo.identity_name(identity)}_{k:04d}.jpg"
            (folder / name).write_bytes(demo.encode_jpeg(photo))
    out = tmp_path / "aligned"
    cfg = AlignConfig(
        input_dir=src,
        output_dir=out,
        image_size=demo.DEMO_IMAGE_SIZE,
        margin=demo.DEMO_MARGIN,
        workers=1,
    )
    summary = align_dataset(cfg, quiet=True)
    assert summary.total == 9
    assert summary.aligned >= 8  # the photos are hard on purpose, but faces are found
    crops = sorted(out.glob("*/*.png"))
    assert len(crops) == summary.aligned
    for crop in crops:
        pixels = np.asarray(Image.open(crop))
        assert pixels.shape == (160, 160, 3)
        assert pixels.std() > 10  # a real picture, not a flat fill


@pytest.mark.slow
def test_demo_prepare_builds_aligns_and_is_cheap_when_done() -> None:
    from facenet_cli.demo.data import prepare

    paths = prepare(quiet=True)
    for raw, aligned in (
        (paths.raw_train, paths.aligned_train),
        (paths.raw_test, paths.aligned_test),
    ):
        n_raw = len(list(raw.glob("*/*.jpg")))
        n_aligned = len(list(aligned.glob("*/*.png")))
        assert n_raw > 0 and n_aligned >= 0.9 * n_raw
        assert (aligned / "bounding_boxes.txt").read_text().count("\n") == n_raw
    # Done already: a new process returns without loading TensorFlow.
    code = (
        "import sys; from facenet_cli.demo.data import prepare; "
        "prepare(quiet=True); print('tensorflow' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
