"""Every kind of input: odd formats and modes are aligned, broken files become failures."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.align import geometry as geo
from facenet_cli.align.coordinator import align_dataset
from facenet_cli.align.imageio import DecodeError, decode
from facenet_cli.align.inputs import in_shard, list_inputs, parse_shard, scan_inputs
from facenet_cli.config import AlignConfig
from facenet_cli.errors import InputError
from tests.align.faces import place


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    img, boxes = place((240, 320), [(0.4, 30, 90)])
    return img, boxes[0]


def _jpeg_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def write_good_inputs(folder: Path, img: np.ndarray) -> None:
    """The same face as JPEG, PNG, BMP, WebP, grey, RGBA, palette, 16-bit and EXIF-rotated."""
    folder.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(img)
    pil.save(folder / "a_jpeg.jpg", quality=92)
    pil.save(folder / "b_png.png")
    pil.save(folder / "c_bmp.bmp")
    pil.save(folder / "d_webp.webp", quality=90)
    pil.convert("L").save(folder / "e_grey.png")
    rgba = pil.convert("RGBA")
    rgba.putalpha(Image.new("L", pil.size, 128))
    rgba.save(folder / "f_rgba.png")
    grey16 = (np.asarray(pil.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "g_grey16.png")
    pil.quantize(colors=256).save(folder / "h_palette.png")
    # Stored rotated 90 degrees with EXIF orientation 6 ("rotate 90 CW to display").
    exif = Image.Exif()
    exif[0x0112] = 6
    pil.transpose(Image.Transpose.ROTATE_90).save(folder / "i_exif.jpg", exif=exif, quality=92)


def write_bad_inputs(folder: Path, img: np.ndarray) -> dict[str, str]:
    """One of each broken kind; returns file name -> expected reason prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "z_empty.jpg").write_bytes(b"")
    good = _jpeg_bytes(img)
    (folder / "z_truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "z_text.png").write_text("this is not an image\n")
    os.symlink(folder / "does-not-exist.jpg", folder / "z_dangling.jpg")
    (folder / "z_folder.jpg").mkdir()
    (folder / "z_tiny.png").write_bytes(_png(np.zeros((10, 10, 3), np.uint8)))
    (folder / "z_blank.png").write_bytes(_png(np.full((120, 120, 3), 200, np.uint8)))
    return {
        "z_empty.jpg": "empty file",
        "z_truncated.jpg": "truncated or corrupt image",
        "z_text.png": "not an image",
        "z_dangling.jpg": "unreadable (No such file or directory)",
        "z_folder.jpg": "unreadable (Is a directory)",
        "z_tiny.png": "image too small",
        "z_blank.png": "no face found",
    }


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def test_decode_handles_modes_and_orientation(tmp_path: Path, face) -> None:
    img, _ = face
    write_good_inputs(tmp_path, img)
    for path in sorted(tmp_path.iterdir()):
        arr = decode(path)
        assert arr.dtype == np.uint8 and arr.shape == img.shape, path.name
        diff = np.abs(arr.astype(int) - img.astype(int)).mean()
        grey_like = path.stem.split("_")[1] in ("grey", "grey16")
        if grey_like:
            assert np.array_equal(arr[..., 0], arr[..., 2])
        else:
            assert diff < 12, (path.name, diff)  # lossy codecs and palettes stay close


def test_decode_reports_reasons(tmp_path: Path, face) -> None:
    expected = write_bad_inputs(tmp_path, face[0])
    for name, reason in expected.items():
        if reason in ("image too small", "no face found"):
            continue
        with pytest.raises(DecodeError) as info:
            decode(tmp_path / name)
        assert str(info.value).startswith(reason), (name, str(info.value))


def test_every_kind_of_input_in_one_run(tmp_path: Path, face) -> None:
    img, box = face
    src = tmp_path / "in"
    write_good_inputs(src / "good", img)
    bad = write_bad_inputs(src / "bad", img)
    out = tmp_path / "out"
    summary = align_dataset(
        AlignConfig(input_dir=src, output_dir=out, image_size=40, margin=0, workers=1), quiet=True
    )
    assert summary.total == 9 + len(bad)
    assert summary.aligned == 9 and summary.faces == 9
    lines = dict(line.split("\t") for line in (out / "failures.txt").read_text().splitlines())
    assert {Path(p).name for p in lines} == set(bad)
    for path, reason in lines.items():
        assert reason.startswith(bad[Path(path).name]), (path, reason)
        assert "\n" not in reason
    boxes = (out / "bounding_boxes.txt").read_text().splitlines()
    assert len(boxes) == summary.total  # unreadable inputs are listed too (path alone)
    for line in boxes:
        parts = line.split(" ")
        if "/good/" in parts[0]:
            assert len(parts) == 5
            assert geo.box_iou([int(v) for v in parts[1:]], box) > 0.75, line
        else:
            assert len(parts) == 1
    for stem in ("a_jpeg", "d_webp", "f_rgba", "g_grey16", "i_exif"):
        assert Image.open(out / "good" / f"{stem}.png").size == (40, 40)


def test_folders_inside_class_folders_are_listed_apart(tmp_path: Path) -> None:
    (tmp_path / "a" / "2019").mkdir(parents=True)
    (tmp_path / "a" / "x.jpg").write_bytes(b"")
    (tmp_path / "a" / "2019" / "y.jpg").write_bytes(b"")
    inputs, nested = scan_inputs(tmp_path, tmp_path / "out")
    assert [i.rel for i in inputs] == ["a/x.jpg"] and nested == [tmp_path / "a" / "2019"]


def test_listing_and_shards(tmp_path: Path) -> None:
    for cls in ("b", "a"):
        (tmp_path / cls).mkdir()
        for name in ("x.jpg", "x.png", "y.webp", "notes.txt", ".hidden.jpg"):
            (tmp_path / cls / name).write_bytes(b"")
    inputs = list_inputs(tmp_path, tmp_path / "out")
    # Every visible file is an input (notes.txt is listed in failures.txt when aligned).
    assert [i.rel for i in inputs] == [
        "a/notes.txt",
        "a/x.jpg",
        "a/x.png",
        "a/y.webp",
        "b/notes.txt",
        "b/x.jpg",
        "b/x.png",
        "b/y.webp",
    ]
    assert [i.stem for i in inputs[:4]] == ["notes", "x", "x_png", "y"]  # distinct outputs
    rels = [f"c{k}/img_{k:04d}.jpg" for k in range(400)]
    parts = [{r for r in rels if in_shard(r, i, 3)} for i in range(3)]
    assert sum(len(p) for p in parts) == 400 and set().union(*parts) == set(rels)
    assert all(len(p) > 80 for p in parts)
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "x", "1/0", "-1/2"):
        with pytest.raises(InputError):
            parse_shard(bad)


def test_shards_split_one_dataset_without_overlap(tmp_path: Path, face) -> None:
    src = tmp_path / "in"
    write_good_inputs(src / "good", face[0])
    out = tmp_path / "out"
    totals = []
    for i in range(2):
        cfg = AlignConfig(input_dir=src, output_dir=out, image_size=32, shard=f"{i}/2", workers=1)
        totals.append(align_dataset(cfg, quiet=True).total)
    assert sum(totals) == 9 and min(totals) > 0
    lines = []
    for i in range(2):
        lines += (out / f"bounding_boxes_shard{i}of2.txt").read_text().splitlines()
    assert len(lines) == len(set(lines)) == 9
    assert len(list((out / "good").glob("*.png"))) == 9


def test_symlink_loops_do_not_break_the_listing(tmp_path: Path, face) -> None:
    src = tmp_path / "in"
    write_good_inputs(src / "good", face[0])
    os.symlink(src / "loop", src / "loop")  # a class entry that loops on itself
    os.symlink(src, src / "parent")  # a class folder linking to its parent
    os.symlink(src / "good" / "self.jpg", src / "good" / "self.jpg")
    rels = [i.rel for i in list_inputs(src, tmp_path / "out")]
    assert "good/a_jpeg.jpg" in rels and "good/self.jpg" in rels
    with pytest.raises(DecodeError, match="unreadable"):
        decode(src / "good" / "self.jpg")
