"""Detection and alignment on real faces (the astronaut of scikit-image, placed on canvases)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.align import geometry as geo
from facenet_cli.align.pipeline import align_dataset
from facenet_cli.config import AlignConfig
from tests.align.faces import place, write_dataset


@pytest.fixture(scope="module")
def detector():
    from facenet_cli.align.detector import shared_detector

    return shared_detector()


PLACEMENTS = [
    ((300, 400), (0.3, 20, 200)),
    ((480, 360), (0.5, 200, 10)),
    ((256, 256), (0.45, 0, 0)),
    ((700, 900), (0.9, 100, 300)),
    ((200, 500), (0.2, 80, 380)),
]


def test_face_is_found_where_it_was_put(detector) -> None:
    images, truths = [], []
    for hw, face in PLACEMENTS:
        img, boxes = place(hw, [face])
        images.append(img)
        truths.append(boxes[0])
    # One call: images of different sizes share the PNet mosaic and the R/O-Net batches.
    for truth, det in zip(truths, detector.detect(images), strict=True):
        assert len(det) >= 1
        assert geo.box_iou(det.boxes[0], truth) > 0.8
        assert det.scores[0] > 0.9
        lm = det.landmarks[0]
        assert lm[0, 0] < lm[1, 0]  # left eye left of right eye
        assert truth[0] < lm[2, 0] < truth[2] and truth[1] < lm[2, 1] < truth[3]  # nose inside


def test_agrees_with_the_mtcnn_package(detector) -> None:
    from mtcnn import MTCNN

    reference = MTCNN()
    images = [place(hw, [face])[0] for hw, face in PLACEMENTS[:3]]
    images.append(place((400, 640), [(0.4, 20, 10), (0.3, 150, 420)])[0])
    ious = []
    for img, det in zip(images, detector.detect(images), strict=True):
        ref = reference.detect_faces(img, threshold_onet=0.7, box_format="xyxy")
        assert len(ref) == len(det)
        # Clipped to the image, as the mtcnn package's fit_to_image does.
        h, w = img.shape[:2]
        ours = det.boxes.copy()
        ours[:, [0, 2]] = np.clip(ours[:, [0, 2]], 0, w - 1)
        ours[:, [1, 3]] = np.clip(ours[:, [1, 3]], 0, h - 1)
        for r in ref:
            ious.append(max(geo.box_iou(r["box"], b) for b in ours))
    assert np.mean(ious) >= 0.9
    assert min(ious) > 0.8


def test_no_face_in_a_blank_image(detector) -> None:
    blank = np.full((200, 240, 3), 128, np.uint8)
    assert len(detector.detect([blank])[0]) == 0


BOX_LINE = re.compile(r"^(\S+\.png) (\d+) (\d+) (\d+) (\d+)$")


def test_align_dataset_writes_crops_box_file_and_failures(tmp_path: Path) -> None:
    src = tmp_path / "in"
    truth = write_dataset(src, n_per_class=2)
    Image.fromarray(np.full((200, 200, 3), 40, np.uint8)).save(src / "bob" / "wall.png")
    out = tmp_path / "out"
    cfg = AlignConfig(input_dir=src, output_dir=out, image_size=64, margin=16, workers=1)
    summary = align_dataset(cfg, quiet=True)
    assert (summary.total, summary.processed, summary.aligned, summary.faces) == (5, 5, 4, 4)
    assert summary.failures == {"no face found": 1}
    for rel in truth:
        crop = Image.open(out / rel.replace(".jpg", ".png"))
        assert crop.size == (64, 64) and crop.mode == "RGB"
    lines = (out / "bounding_boxes.txt").read_text().splitlines()
    assert len(lines) == 5
    assert lines[-1] == str(out / "bob" / "wall.png")  # path alone: no face
    for line, (rel, box) in zip(lines[:2] + lines[2:4], sorted(truth.items()), strict=True):
        m = BOX_LINE.match(line)
        assert m and m.group(1) == str(out / rel.replace(".jpg", ".png"))
        bb = np.array([int(g) for g in m.groups()[1:]])
        # The crop is the face box grown by margin/2 per side: it contains the true face.
        assert bb[0] <= box[0] + 4 and bb[1] <= box[1] + 4
        assert bb[2] >= box[2] - 4 and bb[3] >= box[3] - 4
        assert geo.box_iou(bb, box + np.array([-8, -8, 8, 8])) > 0.7
    assert (out / "failures.txt").read_text() == f"{src / 'bob' / 'wall.png'}\tno face found\n"

    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    again = align_dataset(cfg, quiet=True)
    assert (again.skipped, again.processed) == (5, 0)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_multiple_faces_mode_writes_one_crop_per_face(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "pair").mkdir(parents=True)
    img, boxes = place((360, 640), [(0.45, 20, 20), (0.35, 120, 400)])
    Image.fromarray(img).save(src / "pair" / "two.png")
    multi = AlignConfig(
        input_dir=src,
        output_dir=tmp_path / "multi",
        image_size=48,
        margin=8,
        detect_multiple_faces=True,
        workers=1,
    )
    s = align_dataset(multi, quiet=True)
    assert (s.aligned, s.faces) == (1, 2)
    crops = sorted(p.name for p in (tmp_path / "multi" / "pair").iterdir())
    assert crops == ["two_0.png", "two_1.png"]
    assert all(Image.open(tmp_path / "multi" / "pair" / c).size == (48, 48) for c in crops)
    lines = (tmp_path / "multi" / "bounding_boxes.txt").read_text().splitlines()
    found = [np.array([int(v) for v in BOX_LINE.match(ln).groups()[1:]]) for ln in lines]
    for box in boxes:
        assert max(geo.box_iou(f, box) for f in found) > 0.6
    # A rerun skips the multi-face image (the original re-processed it every time).
    assert align_dataset(multi, quiet=True).processed == 0

    single = AlignConfig(
        input_dir=src, output_dir=tmp_path / "one", image_size=48, margin=8, workers=1
    )
    assert align_dataset(single, quiet=True).faces == 1
    assert sorted(p.name for p in (tmp_path / "one" / "pair").iterdir()) == ["two.png"]
    (line,) = (tmp_path / "one" / "bounding_boxes.txt").read_text().splitlines()
    bb = np.array([int(v) for v in BOX_LINE.match(line).groups()[1:]])
    chosen = geo.central_face_index(np.array(boxes), 360, 640)  # the original's rule
    assert chosen == 1  # the smaller face nearer the centre wins here
    assert geo.box_iou(bb, boxes[chosen]) > 0.6


def test_similarity_mode_puts_landmarks_on_the_template(tmp_path: Path, detector) -> None:
    src = tmp_path / "in"
    (src / "a").mkdir(parents=True)
    img, _ = place((400, 400), [(0.6, 40, 60)])
    tilted = Image.fromarray(img).rotate(
        15, resample=Image.Resampling.BILINEAR, fillcolor=(90,) * 3
    )
    tilted.save(src / "a" / "tilted.png")
    cfg = AlignConfig(
        input_dir=src,
        output_dir=tmp_path / "out",
        image_size=160,
        margin=0,
        mode="similarity",
        workers=1,
    )
    assert align_dataset(cfg, quiet=True).faces == 1
    crop = np.asarray(Image.open(tmp_path / "out" / "a" / "tilted.png"))
    assert crop.shape == (160, 160, 3)
    # Where the warp should have put the landmarks found in the input...
    src_marks = detector.detect([np.asarray(tilted)])[0].landmarks[0]
    m = geo.similarity_transform(src_marks, geo.template_points(160))
    expected = src_marks @ m[:, :2].T + m[:, 2]
    # ...is where the detector finds them in the crop, and the 15 degree tilt is gone.
    found = detector.detect([crop])[0].landmarks[0]
    assert np.linalg.norm(found - expected, axis=1).mean() < 4.0
    assert abs(found[0, 1] - found[1, 1]) < 3.0
    in_tilt = np.degrees(np.arctan2(*(src_marks[1] - src_marks[0])[::-1]))
    assert abs(abs(in_tilt) - 15) < 4


def test_other_settings_in_the_same_output_folder_are_refused(tmp_path: Path) -> None:
    from facenet_cli.errors import InputError

    src = tmp_path / "in"
    write_dataset(src, n_per_class=1, classes=("a",))
    cfg = AlignConfig(input_dir=src, output_dir=tmp_path / "out", image_size=32, workers=1)
    align_dataset(cfg, quiet=True)
    with pytest.raises(InputError, match="image_size: 32 -> 40"):
        align_dataset(AlignConfig(**{**cfg.__dict__, "image_size": 40}), quiet=True)


def test_a_changed_input_is_aligned_again(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_dataset(src, n_per_class=2, classes=("a",))
    cfg = AlignConfig(input_dir=src, output_dir=tmp_path / "out", image_size=32, workers=1)
    assert align_dataset(cfg, quiet=True).faces == 2
    # Replace one photo with a faceless one: its record and its old crop must go.
    changed = src / "a" / "a_0002.jpg"
    Image.fromarray(np.full((120, 150, 3), 70, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    again = align_dataset(cfg, quiet=True)
    assert (again.skipped, again.processed, again.faces) == (1, 1, 1)
    assert not (tmp_path / "out" / "a" / "a_0002.png").exists()
    assert "a_0002.jpg\tno face found" in (tmp_path / "out" / "failures.txt").read_text()


def test_large_batches_are_split_without_changing_the_boxes(detector) -> None:
    from facenet_cli.align.detector import MtcnnDetector

    images = [place(hw, [face])[0] for hw, face in PLACEMENTS[:3]]
    small_groups = MtcnnDetector(max_batch_pixels=200_000)  # one image per group here
    for a, b in zip(detector.detect(images), small_groups.detect(images), strict=True):
        assert len(a) == len(b) == 1
        assert np.allclose(a.boxes, b.boxes, atol=0.05)


def test_tiling_the_pyramid_does_not_change_the_boxes(detector) -> None:
    from facenet_cli.align.detector import MtcnnDetector

    # A 1.5 MP photo: with 128 kP canvases its first pyramid levels are cut into many tiles.
    image, _truth = place((1000, 1500), [(0.5, 100, 200), (0.25, 600, 1100)])
    whole = MtcnnDetector(max_canvas_pixels=4_000_000).detect([image])[0]
    tiled = MtcnnDetector(max_canvas_pixels=128 * 128).detect([image])[0]
    assert len(whole) == len(tiled) == 2
    assert np.allclose(whole.boxes, tiled.boxes, atol=1e-3)
    assert np.allclose(whole.scores, tiled.scores, atol=1e-5)
