"""The demo dataset builder: determinism, layout, split, pairs file, rebuilds, detectability."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facenet_cli.data import demo_faces as demo
from facenet_cli.data.dataset import get_dataset
from facenet_cli.data.demo_faces import (
    MARKER_NAME,
    build_demo_photos,
    demo_faces,
    demo_pairs_per_fold,
    demo_paths,
    demo_photos_ready,
    photo_rng,
    synthesize_photo,
)
from facenet_cli.data.pairs import read_pairs, resolve_pairs


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoPaths:
    # Two photos per identity keeps this quick; the layout and the rules are the same.
    return build_demo_photos(tmp_path_factory.mktemp("demo"), photos_per_identity=2, seed=0)


def test_default_root_follows_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACENET_CACHE", str(tmp_path))
    paths = demo_paths()
    assert paths.root == tmp_path / "demo"
    assert paths.raw_train == tmp_path / "demo" / "raw" / "train"
    assert paths.aligned_test == tmp_path / "demo" / "aligned" / "test"
    assert paths.pairs == tmp_path / "demo" / "pairs.txt"


def test_layout_and_split(built: demo.DemoPaths) -> None:
    train = get_dataset(built.raw_train)
    test = get_dataset(built.raw_test)
    assert [c.name for c in train] == [f"face_{i:03d}" for i in range(70)]
    assert [c.name for c in test] == [f"face_{i:03d}" for i in range(70, 100)]
    assert all(len(c) == 2 for c in train + test)
    assert train[0].image_paths[1] == built.raw_train / "face_000" / "face_000_0002.jpg"
    assert (built.root / MARKER_NAME).is_file()
    assert demo_photos_ready(built.root, photos_per_identity=2, seed=0)


def test_pairs_per_fold() -> None:
    assert demo_pairs_per_fold(10) == 30  # 30 identities x 45 possible matched pairs: plenty
    assert demo_pairs_per_fold(2) == 3  # 30 identities x 1 matched pair, over 10 folds


def test_pairs_file_is_valid_over_held_out_identities(built: demo.DemoPaths) -> None:
    pairs = read_pairs(built.pairs)  # also checks the 10 x 2 x N header against the count
    n = demo_pairs_per_fold(2)
    assert built.pairs.read_text().splitlines()[0] == f"10\t{n}"
    issame = np.array([p.issame for p in pairs]).reshape(10, 2 * n)
    assert issame[:, :n].all() and not issame[:, n:].any()
    names = {p.name1 for p in pairs} | {p.name2 for p in pairs}
    assert names <= {f"face_{i:03d}" for i in range(70, 100)}
    assert len(resolve_pairs(built.raw_test, pairs, strict=True).kept) == len(pairs)


def test_photos_are_real_photos(built: demo.DemoPaths) -> None:
    from PIL import Image

    with Image.open(built.raw_train / "face_003" / "face_003_0001.jpg") as im:
        assert im.format == "JPEG" and im.mode == "RGB"
        assert all(demo.BACKGROUND_SIZE[0] <= side <= demo.BACKGROUND_SIZE[1] for side in im.size)
        pixels = np.asarray(im)
    # A textured, coloured background: not flat, not grey.
    assert pixels.std() > 20
    assert np.abs(pixels[..., 0].astype(int) - pixels[..., 2]).mean() > 5


def test_same_seed_same_bytes_other_seed_other_photos(
    built: demo.DemoPaths, tmp_path: Path
) -> None:
    again = build_demo_photos(tmp_path / "again", photos_per_identity=2, seed=0)
    assert _digest(again.root) == _digest(built.root)
    face = demo_faces()[5]
    a = synthesize_photo(face, photo_rng(0, 5, 1))
    b = synthesize_photo(face, photo_rng(1, 5, 1))
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_built_only_when_missing(built: demo.DemoPaths, tmp_path: Path) -> None:
    root = tmp_path / "demo"
    shutil.copytree(built.root, root)
    paths = demo_paths(root)
    photo = paths.raw_train / "face_000" / "face_000_0001.jpg"
    stamp = photo.stat().st_mtime_ns
    (paths.aligned_train / "face_000").mkdir(parents=True)
    assert build_demo_photos(root, photos_per_identity=2) == paths
    assert photo.stat().st_mtime_ns == stamp, "a complete build must not be redone"
    assert (paths.aligned_train / "face_000").is_dir()
    # Other parameters or another generator version do not count as built.
    assert not demo_photos_ready(root, photos_per_identity=3)
    assert not demo_photos_ready(root, photos_per_identity=2, seed=1)

    # A build that crashed before writing its marker is redone; stale aligned crops go with it.
    (root / MARKER_NAME).unlink()
    (root / ".build-999").mkdir()
    photo.write_bytes(b"half-written")
    build_demo_photos(root, photos_per_identity=2)
    assert (root / MARKER_NAME).is_file()
    assert not paths.aligned_train.exists() and not (root / ".build-999").exists()
    assert _digest(root) == _digest(built.root)
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["photos_per_identity"] == 2 and marker["version"] == demo.GENERATOR_VERSION


def test_unwritable_cache_is_a_storage_error(tmp_path: Path) -> None:
    from facenet_cli.errors import StorageError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot write the demo dataset") as info:
        build_demo_photos(blocker / "demo", photos_per_identity=2)
    assert str(blocker / "demo") in str(info.value)


@pytest.mark.slow
def test_mtcnn_finds_the_faces() -> None:
    """The mtcnn package's detector finds a face in (nearly) every demo photo."""
    mtcnn = pytest.importorskip("mtcnn")
    detector = mtcnn.MTCNN()
    faces = demo_faces()
    sample = [(i, p) for i in range(0, 100, 7) for p in (1, 5, 9)]  # 45 photos
    found = 0
    for identity, photo in sample:
        image = synthesize_photo(faces[identity], photo_rng(0, identity, photo))
        found += bool(detector.detect_faces(image))
    assert found / len(sample) >= 0.95
