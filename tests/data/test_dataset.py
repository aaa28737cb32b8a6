"""Dataset discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from facenet_cli.data.dataset import (
    get_dataset,
    paths_and_labels,
    scan_dataset,
    split_roots,
    subfolder_warning,
)
from facenet_cli.errors import InputError


def test_sorted_classes_and_images(image_tree) -> None:
    root = image_tree({"bob": 3, "alice": 2, "carol": 1})
    (root / "alice" / "notes.txt").write_text("not an image")
    (root / "alice" / ".hidden.png").write_bytes(b"")
    ds = get_dataset(root)
    assert [c.name for c in ds] == ["alice", "bob", "carol"]
    assert [p.name for p in ds[0].image_paths] == ["alice_0001.png", "alice_0002.png"]


def test_min_images_per_class(image_tree) -> None:
    root = image_tree({"a": 3, "b": 1})
    assert [c.name for c in get_dataset(root, min_images_per_class=2)] == ["a"]


def test_several_roots_joined_with_colon(image_tree) -> None:
    r1 = image_tree({"x": 1}, name="one")
    r2 = image_tree({"y": 2}, name="two")
    ds = get_dataset(f"{r1}:{r2}")
    assert [c.name for c in ds] == ["x", "y"]
    assert split_roots(f"{r1}:{r2}") == [r1, r2]


def test_recognised_extensions(image_tree) -> None:
    root = image_tree({"a": 1}, ext=".JPG")
    (root / "a" / "b.webp").write_bytes(b"x")
    (root / "a" / "c.bmp").write_bytes(b"x")
    assert len(get_dataset(root)[0]) == 3


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        get_dataset(tmp_path / "nope")


def test_empty_root(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no class sub-folders"):
        get_dataset(tmp_path)


def test_root_without_images(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="no images"):
        get_dataset(tmp_path)


def test_error_is_one_line_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        get_dataset(tmp_path / "missing")
    assert "\n" not in str(info.value)
    assert str(tmp_path / "missing") in str(info.value)


def test_empty_class_is_dropped_and_labels_follow_class_order(image_tree) -> None:
    root = image_tree({"b": 2, "a": 1})
    (root / "empty").mkdir()  # e.g. an identity whose alignment found no face
    ds = get_dataset(root)
    assert [c.name for c in ds] == ["a", "b"] and sum(len(c) for c in ds) == 3
    paths, labels = paths_and_labels(ds)
    assert labels == [0, 1, 1]
    assert [p.parent.name for p in paths] == ["a", "b", "b"]


def test_file_given_as_root(tmp_path: Path) -> None:
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(InputError, match="not a directory"):
        get_dataset(tmp_path / "f.png")


def test_folders_inside_class_folders_are_reported_not_read(image_tree) -> None:
    root = image_tree({"a": 2, "b": 2})
    (root / "a" / "2019").mkdir()
    (root / "a" / "2019" / "deep.png").write_bytes((root / "a" / "a_0001.png").read_bytes())
    (root / "c" / "album").mkdir(parents=True)  # a class whose photos are all one level deeper
    ds, nested = scan_dataset(root)
    assert [c.name for c in ds] == ["a", "b"] and len(ds[0]) == 2
    assert nested == [root / "a" / "2019", root / "c" / "album"]
    note = subfolder_warning(nested)
    assert note is not None and note.startswith("2 folder(s)") and str(root / "a" / "2019") in note
    assert subfolder_warning([]) is None


def test_no_images_but_deeper_folders_says_where_they_are(tmp_path: Path) -> None:
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "photo.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match=r"no images found in 1 class folders; 1 folder\(s\)"):
        get_dataset(tmp_path)
