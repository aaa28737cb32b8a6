"""LFW pairs files: read, write, resolve and make."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facenet_cli.config import PairsConfig
from facenet_cli.data.dataset import get_dataset
from facenet_cli.data.pairs import (
    Pair,
    make_pairs,
    pair_image_path,
    pairable_images,
    read_pairs,
    resolve_pairs,
    run_make_pairs,
    write_pairs,
)
from facenet_cli.errors import InputError
from tests.conftest import LFW_PAIRS

needs_lfw_pairs = pytest.mark.skipif(not LFW_PAIRS.exists(), reason="shared lfw_pairs.txt absent")


# ------------------------------------------------------------------------------------- reading


@needs_lfw_pairs
def test_read_real_lfw_pairs() -> None:
    pairs = read_pairs(LFW_PAIRS)
    assert len(pairs) == 6000
    assert sum(p.issame for p in pairs) == 3000
    # 10 folds of 300 matched then 300 mismatched, as the header says.
    issame = np.array([p.issame for p in pairs]).reshape(10, 600)
    assert issame[:, :300].all() and not issame[:, 300:].any()
    assert pairs[0] == Pair("Abel_Pacheco", 1, "Abel_Pacheco", 4)
    assert pairs[300] == Pair("Abdel_Madi_Shabneh", 1, "Dean_Barker", 1)


def test_read_without_header_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("a 1 2\n\nb 1 c 3\n")
    assert read_pairs(path) == [Pair("a", 1, "a", 2), Pair("b", 1, "c", 3)]


@pytest.mark.parametrize(
    ("body", "lineno", "match"),
    [
        ("1\t1\na 1 2\nb 1\n", 3, "got 2 fields"),
        ("1\t1\na 1 2\nb x c 1\n", 3, "not an integer"),
        ("a 0 2\n", 1, "1-based"),
        ("a 1 2\nb 1 c 2 d\n", 2, "got 5 fields"),
    ],
)
def test_malformed_line_names_file_and_line(
    tmp_path: Path, body: str, lineno: int, match: str
) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(body)
    with pytest.raises(InputError, match=match) as info:
        read_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{lineno}:")
    assert "\n" not in message


def test_header_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\na 1 2\nb 1 c 1\n")
    with pytest.raises(InputError, match="header says 2 folds"):
        read_pairs(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_pairs(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("10\t300\n")
    with pytest.raises(InputError, match="no pairs"):
        read_pairs(tmp_path / "empty.txt")


# ------------------------------------------------------------------------------------- writing


@needs_lfw_pairs
def test_writer_round_trips_real_file(tmp_path: Path) -> None:
    pairs = read_pairs(LFW_PAIRS)
    out = write_pairs(tmp_path / "sub" / "pairs.txt", pairs, 10, 300)
    assert read_pairs(out) == pairs
    # Byte-identical apart from line endings: same header and tab-separated fields.
    assert out.read_text().split() == LFW_PAIRS.read_text().split()
    assert out.read_text().splitlines()[0] == "10\t300"


def test_writer_rejects_wrong_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not fill"):
        write_pairs(tmp_path / "p.txt", [Pair("a", 1, "a", 2)], 1, 1)


# ----------------------------------------------------------------------------------- resolving


def test_pair_image_path_prefers_jpg_then_png(tmp_path: Path) -> None:
    d = tmp_path / "a"
    d.mkdir()
    (d / "a_0001.png").write_bytes(b"x")
    assert pair_image_path(tmp_path, "a", 1) == d / "a_0001.png"
    (d / "a_0001.jpg").write_bytes(b"x")
    assert pair_image_path(tmp_path, "a", 1) == d / "a_0001.jpg"
    (d / "a_0002.bmp").write_bytes(b"x")
    assert pair_image_path(tmp_path, "a", 2) == d / "a_0002.bmp"
    assert pair_image_path(tmp_path, "a", 3) is None
    assert pair_image_path(tmp_path, "zz", 1) is None


def test_resolve_skips_missing(image_tree) -> None:
    root = image_tree({"a": 2, "b": 1})
    (root / "a" / "a_0002.png").rename(root / "a" / "a_0002.jpg")
    pairs = [Pair("a", 1, "a", 2), Pair("a", 1, "b", 2), Pair("a", 2, "b", 1), Pair("c", 1, "c", 2)]
    res = resolve_pairs(root, pairs)
    assert res.kept.tolist() == [0, 2]
    assert res.issame.tolist() == [True, False]
    assert res.paths == [
        root / "a" / "a_0001.png",
        root / "a" / "a_0002.jpg",
        root / "a" / "a_0002.jpg",
        root / "b" / "b_0001.png",
    ]
    assert res.missing == [
        root / "b" / "b_0002.png",
        root / "c" / "c_0001.png",
        root / "c" / "c_0002.png",
    ]


def test_resolve_strict_names_first_missing(image_tree) -> None:
    root = image_tree({"a": 2})
    with pytest.raises(InputError, match="a_0003.png: image of pair 2 not found"):
        resolve_pairs(root, [Pair("a", 1, "a", 2), Pair("a", 1, "a", 3)], strict=True)
    with pytest.raises(InputError, match="image directory not found"):
        resolve_pairs(root / "missing", [Pair("a", 1, "a", 2)])


# -------------------------------------------------------------------------------------- making


def _check_structure(pairs: list[Pair], folds: int, per_fold: int) -> None:
    assert len(pairs) == folds * 2 * per_fold
    issame = np.array([p.issame for p in pairs]).reshape(folds, 2 * per_fold)
    assert issame[:, :per_fold].all() and not issame[:, per_fold:].any()
    keys = [(p.name1, p.idx1, p.name2, p.idx2) for p in pairs]
    unordered = {frozenset([(p.name1, p.idx1), (p.name2, p.idx2)]) for p in pairs}
    assert len(set(keys)) == len(keys) == len(unordered), "pairs must be distinct"
    assert all(p.idx1 != p.idx2 for p in pairs if p.issame)


def test_make_pairs_balanced_deterministic_and_resolvable(image_tree, tmp_path: Path) -> None:
    root = image_tree({f"id{i:02d}": 2 + i % 5 for i in range(12)}, size=8)
    pairs = make_pairs(root, nrof_folds=4, pairs_per_fold=10, seed=3)
    _check_structure(pairs, 4, 10)
    assert make_pairs(root, nrof_folds=4, pairs_per_fold=10, seed=3) == pairs
    assert make_pairs(root, nrof_folds=4, pairs_per_fold=10, seed=4) != pairs
    # Matched pairs are spread evenly (water-filling): an identity gets all its pairs or within
    # one of the largest share. 2 + i % 5 images give 1, 3, 6, 10, 15 possible pairs.
    per_id = Counter(p.name1 for p in pairs if p.issame)
    capacity = {f"id{i:02d}": (2 + i % 5) * (1 + i % 5) // 2 for i in range(12)}
    assert len(per_id) == 12
    top = max(per_id.values())
    assert all(n == capacity[k] or n >= top - 1 for k, n in per_id.items())
    assert sorted(per_id.values()) == [1, 1, 1, 3, 3, 3, 4, 4, 5, 5, 5, 5]
    # Every image it names exists, and the file reads back identically.
    res = resolve_pairs(root, pairs, strict=True)
    assert len(res.kept) == len(pairs)
    path = write_pairs(tmp_path / "made.txt", pairs, 4, 10)
    assert read_pairs(path) == pairs


def test_make_pairs_accepts_a_dataset(image_tree) -> None:
    root = image_tree({"a": 3, "b": 3}, size=8)
    assert make_pairs(get_dataset(root), 1, 3, seed=1) == make_pairs(root, 1, 3, seed=1)


def test_make_pairs_exhausts_a_tiny_folder_exactly(image_tree) -> None:
    # 2 identities x 3 images: exactly 6 matched and 9 mismatched pairs exist.
    root = image_tree({"a": 3, "b": 3}, size=8)
    pairs = make_pairs(root, nrof_folds=3, pairs_per_fold=2, seed=0)
    _check_structure(pairs, 3, 2)
    with pytest.raises(InputError, match="only 6 distinct matched pairs"):
        make_pairs(root, nrof_folds=7, pairs_per_fold=1)


def test_make_pairs_errors(image_tree) -> None:
    singles = image_tree({"a": 1, "b": 1}, name="singles")
    with pytest.raises(InputError, match="no identity has 2 or more images") as info:
        make_pairs(singles, 1, 1)
    assert str(singles) in str(info.value) and "\n" not in str(info.value)
    one_id = image_tree({"a": 4}, name="one")
    with pytest.raises(InputError, match="need 2 or more identities"):
        make_pairs(one_id, 1, 1)
    few = image_tree({"a": 5, "b": 1}, name="few")  # 10 matched but only 5 mismatched pairs
    with pytest.raises(InputError, match="only 5 distinct mismatched pairs"):
        make_pairs(few, 2, 3)
    with pytest.raises(InputError, match="not found"):
        make_pairs(few / "missing")


def test_pairable_images_need_the_lfw_name(image_tree) -> None:
    root = image_tree({"a": 2}, size=8)
    (root / "a" / "a_0001_1.png").write_bytes(b"x")  # second face of a multi-face image
    (root / "a" / "a_3.png").write_bytes(b"x")  # not zero-padded: a pairs line cannot name it
    (root / "a" / "photo.png").write_bytes(b"x")
    assert pairable_images(get_dataset(root)) == {"a": [1, 2]}


def test_run_make_pairs_writes_and_summarises(image_tree, tmp_path: Path, capsys) -> None:
    root = image_tree({f"p{i}": 3 for i in range(5)}, size=8)
    out = tmp_path / "out" / "pairs.txt"
    pairs = run_make_pairs(PairsConfig(root, out, nrof_folds=2, pairs_per_fold=4, seed=1))
    assert read_pairs(out) == pairs
    assert out.read_text().startswith("2\t4\n")
    printed = capsys.readouterr().out
    assert "16 (8 matched, 8 mismatched)" in printed
