"""Datasets as people have them: Netpbm photos in ``s1/1.pgm`` folders, files without extension."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from facenet_cli.align.coordinator import align_dataset
from facenet_cli.config import AlignConfig
from facenet_cli.data.dataset import get_dataset
from tests.align.faces import place


def _classic_set(root: Path, people: int, photos: int) -> None:
    """Grey Netpbm photos named like the classic set: ``s1/1.pgm ... sN/M.pgm``."""
    rng = np.random.default_rng(3)
    for person in range(1, people + 1):
        folder = root / f"s{person}"
        folder.mkdir(parents=True)
        for k in range(1, photos + 1):
            scale = float(rng.uniform(0.3, 0.36))
            img, _ = place((200, 190), [(scale, int(rng.integers(0, 15)), int(rng.integers(0, 8)))])
            Image.fromarray(img).convert("L").save(folder / f"{k}.pgm")


def test_the_classic_netpbm_layout_aligns_without_renaming(tmp_path: Path) -> None:
    from facenet_cli.data.pipeline import image_dataset, image_errors

    src, out = tmp_path / "att_faces", tmp_path / "aligned"
    _classic_set(src, people=3, photos=3)
    (src / "README").write_text("40 people x 10 photos\n")  # at the root: not a class folder
    summary = align_dataset(
        AlignConfig(input_dir=src, output_dir=out, image_size=48, margin=8, workers=1), quiet=True
    )
    assert summary.total == 9 and summary.aligned == 9 and summary.faces == 9
    assert (out / "failures.txt").read_text() == ""
    crops = sorted(str(p.relative_to(out)) for p in out.glob("s*/*.png"))
    assert crops == [f"s{i}/{k}.png" for i in range(1, 4) for k in range(1, 4)]
    # The aligned folder and the raw Netpbm one both read as datasets and through tf.data.
    for root, size in ((out, 48), (src, 190)):
        paths = [p for c in get_dataset(root) for p in c.image_paths]
        assert len(paths) == 9
        ds = image_dataset(paths, image_size=size, batch_size=9, standardization="none")
        with image_errors(paths):
            batch = next(iter(ds)).numpy()
        assert batch.shape == (9, size, size, 3) and batch.std() > 10


def test_a_text_file_is_counted_and_listed_and_an_extensionless_jpeg_aligned(
    tmp_path: Path,
) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    (src / "alice").mkdir(parents=True)
    img, _ = place((240, 240), [(0.4, 20, 10)])
    Image.fromarray(img).save(src / "alice" / "DSC0001", format="JPEG", quality=92)
    (src / "alice" / "notes.txt").write_text("holiday 2019\n")
    (src / "alice" / ".hidden").write_text("ignored")
    summary = align_dataset(
        AlignConfig(input_dir=src, output_dir=out, image_size=32, workers=1), quiet=True
    )
    assert summary.total == 2 and summary.aligned == 1
    assert summary.failures == {"not an image": 1}
    failures = (out / "failures.txt").read_text().splitlines()
    assert failures == [f"{src / 'alice' / 'notes.txt'}\tnot an image (unrecognised format)"]
    assert Image.open(out / "alice" / "DSC0001.png").size == (32, 32)


def test_an_output_folder_inside_the_input_folder_is_not_an_input(tmp_path: Path) -> None:
    from facenet_cli.align.inputs import list_inputs

    src = tmp_path / "photos"
    (src / "alice").mkdir(parents=True)
    (src / "alice" / "1.pgm").write_bytes(b"P5\n1 1\n255\n\x80")
    (src / "aligned").mkdir()
    (src / "aligned" / "bounding_boxes.txt").write_text("")
    rels = [i.rel for i in list_inputs(src, src / "aligned")]
    assert rels == ["alice/1.pgm"]
