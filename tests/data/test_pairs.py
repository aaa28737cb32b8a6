"""Pairs files (LFW and path-based): read, write, resolve and make."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from facenet_cli.config import PairsConfig
from facenet_cli.data.dataset import get_dataset
from facenet_cli.data.pairs import (
    Pair,
    PathPair,
    make_pairs,
    pair_image_path,
    pairable_images,
    plan_pairs,
    read_pairs,
    resolve_pairs,
    run_make_pairs,
    write_pairs,
)
from facenet_cli.errors import InputError
from tests.conftest import LFW_PAIRS

# ------------------------------------------------------------------------------------- reading


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
    # The draw over all identities at once (the fallback of identity-disjoint folds).
    kw = {"nrof_folds": 4, "pairs_per_fold": 10, "disjoint": False}
    pairs = make_pairs(root, seed=3, **kw)
    _check_structure(pairs, 4, 10)
    assert make_pairs(root, seed=3, **kw) == pairs
    assert make_pairs(root, seed=4, **kw) != pairs
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


# ---------------------------------------------------------------------- identity-disjoint folds


def _fold_identities(pairs: list, folds: int) -> list[set[str]]:
    per = len(pairs) // folds
    out = []
    for k in range(folds):
        names: set[str] = set()
        for p in pairs[k * per : (k + 1) * per]:
            if isinstance(p, PathPair):
                names.update(x.split("/")[0] for x in (p.path1, p.path2))
            else:
                names.update((p.name1, p.name2))
        out.append(names)
    return out


def test_folds_are_identity_disjoint_when_the_identities_allow(image_tree) -> None:
    root = image_tree({f"id{i:02d}": 2 + i % 5 for i in range(12)}, size=8)
    dataset = get_dataset(root)
    plan = plan_pairs(dataset, nrof_folds=4, pairs_per_fold=5, seed=3)
    assert plan.disjoint
    _check_structure(plan.pairs, 4, 5)
    groups = _fold_identities(plan.pairs, 4)
    assert all(len(g) >= 2 for g in groups)
    assert sum(len(g) for g in groups) == len(set().union(*groups)), "a person in two folds"
    assert plan_pairs(dataset, nrof_folds=4, pairs_per_fold=5, seed=3).pairs == plan.pairs
    assert len(resolve_pairs(root, plan.pairs, strict=True).kept) == len(plan.pairs)


def test_one_large_identity_still_gets_disjoint_folds(image_tree) -> None:
    # One identity holds most matched pairs: the snake deal leaves a fold short, the greedy one
    # gives it a fold of its own plus a single-image identity for the mismatched pairs.
    root = image_tree({"big": 12, **{f"s{i}": 1 for i in range(6)}, "two": 2}, size=8)
    plan = plan_pairs(get_dataset(root), nrof_folds=2, pairs_per_fold=1, seed=0)
    assert plan.disjoint
    groups = _fold_identities(plan.pairs, 2)
    assert not groups[0] & groups[1]


def test_too_few_identities_share_folds_and_say_so(image_tree, tmp_path: Path, capsys) -> None:
    root = image_tree({"a": 6, "b": 6, "c": 6}, size=8)  # 3 identities cannot fill 2 folds of 2
    plan = plan_pairs(get_dataset(root), nrof_folds=2, pairs_per_fold=4, seed=0)
    assert not plan.disjoint
    _check_structure(plan.pairs, 2, 4)
    run_make_pairs(PairsConfig(root, tmp_path / "p.txt", nrof_folds=2, pairs_per_fold=4))
    assert "sharing identities" in capsys.readouterr().out


# ------------------------------------------------------------------------ path-based pairs files


def _own_photos(root: Path, people: int, photos: int) -> Path:
    """A folder named the way people name their own photos: s1/1.png ... (not <name>_<idx>)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(1, people + 1):
        d = root / f"s{i}"
        d.mkdir(parents=True)
        for k in range(1, photos + 1):
            arr = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{k}.png")
    return root


def test_read_path_pairs_tabs_spaces_comments_and_header(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text(
        "# my own pairs\n1 2\n"
        "s1/1.png s1/2.png same\n"
        "John Doe/a b.png\tJane/1.png\tdifferent\n"
        "\n  # indented comment\n"
        "s2/1.png s2/3.png SAME\n"
        "s1/1.png s2/1.png Different\n"
    )
    assert read_pairs(path) == [
        PathPair("s1/1.png", "s1/2.png", True),
        PathPair("John Doe/a b.png", "Jane/1.png", False),
        PathPair("s2/1.png", "s2/3.png", True),
        PathPair("s1/1.png", "s2/1.png", False),
    ]


@pytest.mark.parametrize(
    ("body", "lineno", "match"),
    [
        ("a/1.png b/1.png same\na/1.png same\n", 2, "expected 'path1 path2 same|different'"),
        ("a/1.png b/1.png same\nJohn Doe/1.png b/1.png different\n", 2, "separate the fields"),
        ("a/1.png b/1.png same\na 1 2\n", 2, "other format"),
        ("a 1 2\na/1.png b/1.png same\n", 2, "the file's pairs are LFW"),
        ("/etc/x.png a/1.png same\n", 1, "relative to the data folder"),
        ("a/1.png ../b/1.png different\n", 1, "relative to the data folder"),
        ("a/1.png\tb/1.png\tx\tsame\n", 1, "got 4 fields"),
        ("a/1.png b/1.png sme\n", 1, "label must be 'same' or 'different', got 'sme'"),
        ("a/1.png b/1.png\n", 1, "'path1 path2 same|different', got 2 fields"),
    ],
)
def test_malformed_path_line_names_file_and_line(
    tmp_path: Path, body: str, lineno: int, match: str
) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(body)
    with pytest.raises(InputError, match=match) as info:
        read_pairs(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{lineno}:")
    assert "\n" not in message


def test_make_pairs_on_own_file_names_writes_path_pairs(tmp_path: Path, capsys) -> None:
    root = _own_photos(tmp_path / "faces", people=8, photos=4)
    out = tmp_path / "pairs.txt"
    pairs = run_make_pairs(PairsConfig(root, out, nrof_folds=2, pairs_per_fold=6, seed=1))
    assert all(isinstance(p, PathPair) for p in pairs)
    assert read_pairs(out) == pairs
    assert out.read_text().splitlines()[1].count("\t") == 2
    issame = np.array([p.issame for p in pairs]).reshape(2, 12)
    assert issame[:, :6].all() and not issame[:, 6:].any()
    assert all((p.path1.split("/")[0] == p.path2.split("/")[0]) == p.issame for p in pairs)
    assert len({frozenset((p.path1, p.path2)) for p in pairs}) == len(pairs)
    groups = _fold_identities(pairs, 2)
    assert not groups[0] & groups[1]
    assert len(resolve_pairs(root, pairs, strict=True).kept) == len(pairs)
    printed = capsys.readouterr().out
    assert "paths" in printed and "identity-disjoint" in printed


def test_path_pairs_resolve_with_missing_images(tmp_path: Path) -> None:
    root = _own_photos(tmp_path / "faces", people=2, photos=2)
    pairs = [
        PathPair("s1/1.png", "s1/2.png", True),
        PathPair("s1/1.png", "s2/9.png", False),
        PathPair("s2/1.png", "s2/2.png", True),
    ]
    res = resolve_pairs(root, pairs)
    assert res.kept.tolist() == [0, 2] and res.issame.tolist() == [True, True]
    assert res.missing == [root / "s2" / "9.png"]
    assert res.paths[0] == root / "s1" / "1.png"
    with pytest.raises(InputError, match=r"s2/9.png: image of pair 2 not found"):
        resolve_pairs(root, pairs, strict=True)


def test_format_choice_lfw_names_or_paths(image_tree, tmp_path: Path, capsys) -> None:
    root = image_tree({f"p{i}": 3 for i in range(4)}, size=8)
    assert all(isinstance(p, Pair) for p in make_pairs(root, 1, 3, seed=0))
    (root / "p0" / "extra.png").write_bytes((root / "p0" / "p0_0001.png").read_bytes())
    # One file an LFW line cannot name: every image is still used, through paths.
    plan = plan_pairs(get_dataset(root), 1, 3, seed=0)
    assert plan.path_based and not plan.left_out
    # Forcing LFW leaves that file out, and the summary says so.
    run_make_pairs(PairsConfig(root, tmp_path / "p.txt", 1, 3, 0, format="lfw"))
    printed = capsys.readouterr().out
    assert "left out" in printed and "1 of 13 images" in printed
    assert all(isinstance(p, Pair) for p in read_pairs(tmp_path / "p.txt"))


def test_shipped_lfw_pairs_is_the_default(tmp_path: Path) -> None:
    from facenet_cli.data.pairs import find_pairs_file

    assert find_pairs_file(tmp_path) == LFW_PAIRS and LFW_PAIRS.is_file()
    (tmp_path / "pairs.txt").write_text("a 1 2\n")
    assert find_pairs_file(tmp_path / "lfw") == tmp_path / "pairs.txt"


def test_protocol_folds_come_from_the_header_unless_given(tmp_path: Path) -> None:
    from facenet_cli.config import TrainConfig
    from facenet_cli.data.pairs_file import protocol_folds
    from facenet_cli.train.settings import resolve_config

    headed = tmp_path / "pairs.txt"
    headed.write_text("4 1\na 1 2\na 1 b 1\nc 1 2\nc 1 d 1\ne 1 2\ne 1 f 1\ng 1 2\ng 1 h 1\n")
    bare = tmp_path / "bare.txt"
    bare.write_text("a 1 2\na 1 b 1\n")
    assert protocol_folds(None, headed) == 4
    assert protocol_folds(3, headed) == 3
    assert protocol_folds(None, bare) == 10 and protocol_folds(None, None) == 10
    # Training evaluates with the same folds as `facenet validate`, and saves them resolved.
    config = TrainConfig(data_dir=str(tmp_path), lfw_dir=tmp_path, lfw_pairs=headed)
    assert resolve_config(config).lfw_nrof_folds == 4
    given = TrainConfig(data_dir=str(tmp_path), lfw_dir=tmp_path, lfw_pairs=headed,
                        lfw_nrof_folds=2)  # fmt: skip
    assert resolve_config(given).lfw_nrof_folds == 2
    assert resolve_config(TrainConfig(data_dir=str(tmp_path))).lfw_nrof_folds == 10
