"""Pure-numpy crop geometry and MTCNN box arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_cli.align import geometry as geo


def test_pyramid_scales_follow_the_original_loop() -> None:
    scales = geo.pyramid_scales(250, 250, min_face_size=20, factor=0.709)
    assert scales[0] == pytest.approx(0.6)
    assert np.allclose(scales[1:] / scales[:-1], 0.709)
    assert 250 * scales[-1] >= 12 > 250 * scales[-1] * 0.709
    assert len(geo.pyramid_scales(10, 400)) == 0  # shorter side below the minimum face


def test_pnet_cells_counts_full_windows() -> None:
    assert geo.pnet_cells(12) == 1
    assert geo.pnet_cells(13) == 2
    assert geo.pnet_cells(150) == 70
    assert geo.pnet_cells(9) == 0


def test_pack_levels_places_levels_apart_on_even_coordinates() -> None:
    rng = np.random.default_rng(1)
    shapes = [(int(h), int(w)) for h, w in rng.integers(12, 300, (60, 2))]
    placements, canvases = geo.pack_levels(shapes, max_canvas_pixels=200_000)
    assert len(placements) == len(shapes)
    assert len(canvases) > 1  # the area limit split the work
    for c, (ch, cw) in enumerate(canvases):
        occupied = np.zeros((ch, cw), dtype=int)
        for p, (h, w) in zip(placements, shapes, strict=True):
            assert (p.height, p.width) == (h, w)
            if p.canvas != c:
                continue
            assert p.y % 2 == 0 and p.x % 2 == 0
            assert p.y + h <= ch and p.x + w <= cw
            occupied[p.y : p.y + h, p.x : p.x + w] += 1
        assert occupied.max() == 1


@pytest.mark.parametrize("shape", [(150, 140), (1800, 2400), (577, 1283), (61, 600)])
def test_split_level_yields_every_pnet_cell_once_from_its_own_window(shape) -> None:
    height, width = shape
    rows, cols = np.zeros(geo.pnet_cells(height), int), np.zeros(geo.pnet_cells(width), int)
    tiles = geo.split_level(height, width, max_side=256)
    for t in tiles:
        assert t.height <= max(256, height if t.height == height else 0)
        assert t.width <= max(256, width if t.width == width else 0)
        # The tile's cells are the level's cells row0.. (its pixels start on an even row) and
        # their 12-px windows lie inside the level.
        n_r, n_c = geo.pnet_cells(t.height), geo.pnet_cells(t.width)
        assert 2 * t.row0 + t.height <= height and 2 * t.col0 + t.width <= width
        if len(tiles) > 1:
            assert n_r > 0 and n_c > 0
        if t.col0 == 0:
            rows[t.row0 : t.row0 + n_r] += 1
        if t.row0 == 0:
            cols[t.col0 : t.col0 + n_c] += 1
    assert rows.min() == rows.max() == 1
    assert cols.min() == cols.max() == 1
    assert len(geo.split_level(150, 140, max_side=256)) == 1


def test_suppress_drops_any_box_overlapping_a_better_one() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [8, 0, 18, 10], [50, 50, 60, 60]], float)
    # Box 1 overlaps box 0 (IoU 0.82) and goes; box 2 touches box 0 only a little and stays.
    keep = geo.suppress(boxes, 0.5)
    assert keep.tolist() == [0, 2, 3]
    assert geo.suppress(boxes, 0.05).tolist() == [0, 3]
    many = np.tile(boxes, (700, 1))  # more than one column block
    assert geo.suppress(many, 0.5).tolist() == [0, 2, 3]


def test_suppress_min_method_uses_the_smaller_area() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30]], float)
    assert geo.suppress(boxes, 0.7, "union").tolist() == [0, 1]
    assert geo.suppress(boxes, 0.7, "min").tolist() == [0]


def test_square_and_regress_boxes() -> None:
    sq = geo.square_boxes(np.array([[10.0, 20.0, 30.0, 60.0]]))
    assert sq.tolist() == [[0.0, 20.0, 40.0, 60.0]]
    moved = geo.regress_boxes(np.array([[0.0, 0.0, 9.0, 9.0]]), np.array([[0.1, 0.0, -0.1, 0.2]]))
    assert np.allclose(moved, [[1.0, 0.0, 8.0, 11.0]])


def test_central_face_rule_prefers_big_central_faces() -> None:
    boxes = np.array([[0, 0, 40, 40], [80, 80, 120, 120], [150, 150, 200, 200]], float)
    assert geo.central_face_index(boxes, 200, 200) == 1
    boxes[0] = [0, 0, 150, 150]  # a much larger face wins even off centre
    assert geo.central_face_index(boxes, 200, 200) == 0


def test_margin_box_is_the_originals_clipped_integer_crop() -> None:
    bb = geo.margin_box(np.array([10.7, 50.2, 90.9, 140.0]), 44, height=150, width=100)
    assert bb.dtype == np.int32
    assert bb.tolist() == [0, 28, 100, 150]


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, t = 0.3, 1.7, np.array([5.0, -3.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ (scale * rot).T + t
    m = geo.similarity_transform(src, dst)
    assert np.allclose(m[:, :2], scale * rot)
    assert np.allclose(m[:, 2], t)
    inv = geo.invert_affine(m)
    back = dst @ inv[:, :2].T + inv[:, 2]
    assert np.allclose(back, src)


def test_template_points_scale_and_shrink_with_margin() -> None:
    t160 = geo.template_points(160)
    assert np.allclose(t160, geo.TEMPLATE_112 * 160 / 112)
    t_margin = geo.template_points(160, margin=32)
    spread = np.ptp(t_margin, axis=0)
    assert np.all(spread < np.ptp(t160, axis=0))
    assert t_margin[0, 0] < t_margin[1, 0]  # left eye left of right eye


def test_suppress_is_not_greedy_like_the_mtcnn_package() -> None:
    # B overlaps A (IoU 0.54) and is dropped; C overlaps only B by 0.54. Greedy NMS would keep C;
    # the package drops it because a better-scored box (B) overlaps it.
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], float)
    assert geo.suppress(boxes, 0.5).tolist() == [0]
