"""Images found by content: every format OpenCV or Pillow decodes, in listing, decoding, tf.data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.data.dataset import get_dataset, non_image_warning
from facenet_cli.data.images import DecodeError, is_image, read_image, scan_class_folder
from facenet_cli.errors import InputError


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A real face photo: an LFW crop shipped by scikit-image, as 8-bit RGB at 50x50."""
    from skimage import data

    grey = data.lfw_subset()[0]  # float 0..1, 25x25
    img = Image.fromarray(np.round(grey * 255).astype(np.uint8)).resize((50, 50))
    rgb = np.stack([np.asarray(img)] * 3, axis=-1)
    # Give the channels different content so that a swapped or dropped channel shows.
    rgb[..., 0] = np.clip(rgb[..., 0].astype(int) + 40, 0, 255)
    rgb[..., 2] = rgb[..., 2] // 2
    return rgb


def write_formats(folder: Path, rgb: np.ndarray) -> dict[str, str]:
    """The face in every format of the issue; returns file name -> how to compare it."""
    folder.mkdir(parents=True, exist_ok=True)
    pil = Image.fromarray(rgb)
    pil.convert("L").save(folder / "a.pgm")  # Netpbm grey, as the classic s1/1.pgm set
    pil.save(folder / "b.ppm")
    pil.save(folder / "c.pnm")
    pil.save(folder / "d.tiff")
    pil.save(folder / "e.webp", lossless=True)
    pil.save(folder / "f.bmp")
    grey16 = np.asarray(pil.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey16).save(folder / "g16.png")
    pil.quantize(colors=256).save(folder / "h_palette.png")
    pil.convert("CMYK").save(folder / "i_cmyk.jpg", quality=95)
    pil.save(folder / "j_noext", format="JPEG", quality=95)
    pil.save(folder / "k_upper.JPG", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated; displayed after a 90 degree clockwise turn
    pil.transpose(Image.Transpose.ROTATE_90).save(folder / "l_exif.jpeg", exif=exif, quality=95)
    pil.save(folder / "m_pgm_no_ext", format="PPM")  # Netpbm without an extension
    return {
        "a.pgm": "grey",
        "b.ppm": "exact",
        "c.pnm": "exact",
        "d.tiff": "exact",
        "e.webp": "exact",
        "f.bmp": "exact",
        "g16.png": "grey",
        "h_palette.png": "close",
        "i_cmyk.jpg": "close",
        "j_noext": "close",
        "k_upper.JPG": "close",
        "l_exif.jpeg": "close",
        "m_pgm_no_ext": "exact",
    }


def _check(name: str, how: str, got: np.ndarray, rgb: np.ndarray) -> None:
    assert got.dtype == np.uint8 and got.shape == rgb.shape, (name, got.shape)
    if how == "exact":
        np.testing.assert_array_equal(got, rgb, err_msg=name)
    elif how == "grey":
        grey = np.asarray(Image.fromarray(rgb).convert("L"))
        assert np.array_equal(got[..., 0], got[..., 2]), name
        assert np.abs(got[..., 0].astype(int) - grey).max() <= 1, name
    else:
        assert np.abs(got.astype(int) - rgb.astype(int)).mean() < 6, name


def test_every_format_is_listed_as_an_image_and_decodes(tmp_path: Path, face) -> None:
    expected = write_formats(tmp_path / "s1", face)
    (tmp_path / "s1" / "notes.txt").write_text("taken on a Tuesday\n")
    (tmp_path / "s1" / "empty").write_bytes(b"")
    (tmp_path / "s1" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "s1" / "nested").mkdir()
    listed = scan_class_folder(tmp_path / "s1")
    assert [p.name for p in listed.images] == sorted(expected)
    assert [p.name for p in listed.non_images] == ["empty", "notes.txt"]
    for path in listed.images:
        _check(path.name, expected[path.name], read_image(path), face)


def test_the_tf_data_pipeline_reads_the_same_pixels(tmp_path: Path, face) -> None:
    from facenet_cli.data.pipeline import image_dataset, image_errors

    expected = write_formats(tmp_path / "s1", face)
    paths = list(scan_class_folder(tmp_path / "s1").images)
    ds = image_dataset(paths, image_size=50, batch_size=len(paths), standardization="none")
    with image_errors(paths):
        batch = next(iter(ds)).numpy()
    for path, got in zip(paths, batch, strict=True):
        how = "close" if path.name == "l_exif.jpeg" else expected[path.name]
        if path.name == "l_exif.jpeg":
            # TensorFlow's own JPEG decoder (used for files named .jpeg) ignores EXIF
            # orientation: the stored, rotated pixels come through.
            stored = np.asarray(Image.fromarray(face).transpose(Image.Transpose.ROTATE_90))
            _check(path.name, how, got.astype(np.uint8), stored)
            continue
        _check(path.name, how, got.astype(np.uint8), face)


def test_a_non_image_in_a_fallback_dataset_is_named(tmp_path: Path, face) -> None:
    from facenet_cli.data.pipeline import image_dataset, image_errors

    write_formats(tmp_path / "s1", face)
    bad = tmp_path / "s1" / "notes"
    bad.write_text("not a photo")
    paths = [tmp_path / "s1" / "a.pgm", bad]
    with pytest.raises(InputError, match="unreadable image") as info:
        with image_errors(paths):
            list(image_dataset(paths, image_size=8, batch_size=2))
    message = str(info.value)
    assert message.startswith(str(bad)) and "not an image" in message and "\n" not in message


def test_content_decides_not_the_name(tmp_path: Path, face) -> None:
    jpeg_as_txt = tmp_path / "photo.txt"
    Image.fromarray(face).save(jpeg_as_txt, format="JPEG")
    tga = tmp_path / "photo.tga.bak"  # no signature: Pillow identifies it
    Image.fromarray(face).save(tga, format="TGA")
    assert is_image(jpeg_as_txt) and is_image(tga)
    np.testing.assert_array_equal(read_image(tga), face)
    text = tmp_path / "P5 notes"
    text.write_text("Photos of alice, 2019\n")
    assert not is_image(text)
    with pytest.raises(DecodeError, match="not an image"):
        read_image(text)


def test_dataset_counts_an_extensionless_jpeg_and_reports_a_text_file(tmp_path: Path, face) -> None:
    folder = tmp_path / "root" / "alice"
    folder.mkdir(parents=True)
    Image.fromarray(face).save(folder / "IMG0001", format="JPEG")
    (folder / "readme.txt").write_text("alice, 2019\n")
    (tmp_path / "root" / "bob").mkdir()
    Image.fromarray(face).save(tmp_path / "root" / "bob" / "1.pgm")
    ds = get_dataset(tmp_path / "root")
    assert [(c.name, [p.name for p in c.image_paths]) for c in ds] == [
        ("alice", ["IMG0001"]),
        ("bob", ["1.pgm"]),
    ]
    note = non_image_warning(ds)
    assert note is not None and note.startswith("1 file(s)") and str(folder / "readme.txt") in note


def test_a_folder_of_non_images_says_so(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("x")
    with pytest.raises(InputError, match=r"no images found in 1 class folders \(1 other files"):
        get_dataset(tmp_path)


def test_validate_note_lists_non_images_of_its_folder(tmp_path: Path, face) -> None:
    from facenet_cli.data.dataset import non_image_note

    (tmp_path / "s1").mkdir()
    Image.fromarray(face).save(tmp_path / "s1" / "1.pgm")
    assert non_image_note(tmp_path) is None
    (tmp_path / "s1" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0 not a photo")
    note = non_image_note(tmp_path)
    assert note is not None and str(tmp_path / "s1" / "Thumbs.db") in note
    assert non_image_note(tmp_path / "missing") is None  # validate words that error itself
