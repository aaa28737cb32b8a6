"""The tf.data image pipeline: decoding, crop / flip, standardisation, order, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from facenet_cli.data.pipeline import (  # noqa: E402
    decode_image,
    image_dataset,
    image_errors,
    standardize,
)
from facenet_cli.errors import InputError  # noqa: E402


def _save(path: Path, array: np.ndarray, **kwargs: object) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


@pytest.fixture
def gradient(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 12x16 RGB PNG whose every pixel is distinct, so crops and flips can be located."""
    ys, xs = np.mgrid[0:12, 0:16]
    array = np.stack([ys * 20, xs * 15, 255 - xs * 15], axis=-1).astype(np.uint8)
    return _save(tmp_path / "gradient.png", array), array


def _collect(ds: tf.data.Dataset) -> np.ndarray:
    return np.concatenate([b.numpy() for b in ds])


# ------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize(
    ("name", "array", "kwargs"),
    [
        ("grey.png", np.full((5, 7), 90, np.uint8), {}),
        ("grey.jpg", np.full((5, 7), 90, np.uint8), {"quality": 100}),
        ("rgba.png", np.dstack([np.full((5, 7, 3), 90, np.uint8), np.zeros((5, 7), np.uint8)]), {}),
        ("rgb.bmp", np.full((5, 7, 3), 90, np.uint8), {}),
        ("rgb.gif", np.full((5, 7, 3), 90, np.uint8), {}),
    ],
)
def test_decode_gives_three_channels(
    tmp_path: Path, name: str, array: np.ndarray, kwargs: dict[str, object]
) -> None:
    image = decode_image(tf.constant(str(_save(tmp_path / name, array, **kwargs)))).numpy()
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    # Grey is replicated and alpha (here fully transparent) is dropped, not blended.
    assert np.abs(image.astype(int) - 90).max() <= 2


def test_decode_keeps_rgb_order(gradient) -> None:
    path, array = gradient
    np.testing.assert_array_equal(decode_image(tf.constant(str(path))).numpy(), array)


# ------------------------------------------------------------------------------ standardisation


def test_standardize_modes() -> None:
    x = tf.constant(np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3) % 256, tf.uint8)
    per_image = standardize(x, "per_image").numpy()
    assert per_image.dtype == np.float32
    np.testing.assert_allclose(per_image.reshape(2, -1).mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(per_image.reshape(2, -1).std(axis=1), 1, atol=1e-3)
    fixed = standardize(tf.constant([[0, 255]], tf.uint8), "fixed").numpy()
    np.testing.assert_allclose(fixed, [[-127.5 / 128, 127.5 / 128]])
    none = standardize(x, "none").numpy()
    assert none.dtype == np.float32 and none.max() == x.numpy().max()
    with pytest.raises(ValueError, match="unknown standardization"):
        standardize(x, "zca")


@pytest.mark.parametrize(
    ("mode", "low", "high"), [("fixed", -1.0, 1.0), ("none", 0.0, 255.0), ("per_image", -5, 5)]
)
def test_dataset_value_ranges(gradient, mode: str, low: float, high: float) -> None:
    path, _ = gradient
    batch = _collect(image_dataset([path], image_size=12, batch_size=1, standardization=mode))
    assert batch.dtype == np.float32
    assert low <= batch.min() < batch.max() <= high


# ------------------------------------------------------------------------------- crop and flip


def test_centre_crop_and_pad(gradient) -> None:
    path, array = gradient
    crop = _collect(image_dataset([path], image_size=8, batch_size=1, standardization="none"))
    np.testing.assert_array_equal(crop[0], array[2:10, 4:12])
    padded = _collect(image_dataset([path], image_size=20, batch_size=1, standardization="none"))
    assert padded.shape == (1, 20, 20, 3)
    np.testing.assert_array_equal(padded[0, 4:16, 2:18], array)
    assert padded[0, :4].max() == 0 and padded[0, :, :2].max() == 0


def test_random_crop_is_a_window_and_varies(gradient) -> None:
    path, array = gradient
    ds = image_dataset(
        [path] * 16, image_size=8, batch_size=16, random_crop=True, standardization="none", seed=5
    )
    crops = _collect(ds).astype(np.uint8)
    windows = {
        (y, x)
        for y in range(5)
        for x in range(9)
        for c in crops
        if np.array_equal(c, array[y : y + 8, x : x + 8])
    }
    assert len(windows) > 1, "random crops should come from several positions"
    assert all(
        any(np.array_equal(c, array[y : y + 8, x : x + 8]) for y, x in windows) for c in crops
    )
    # Smaller than the crop: padded, then cropped.
    small = image_dataset([path], image_size=20, batch_size=1, random_crop=True, seed=1)
    assert _collect(small).shape == (1, 20, 20, 3)


def test_random_flip_only_when_asked(gradient) -> None:
    path, full = gradient
    array = full[:, 2:14]  # the centre 12x12 crop
    plain = _collect(image_dataset([path] * 8, image_size=12, batch_size=8, standardization="none"))
    assert all(np.array_equal(im, array) for im in plain)
    flipped = _collect(
        image_dataset(
            [path] * 32,
            image_size=12,
            batch_size=8,
            random_flip=True,
            standardization="none",
            seed=2,
        )
    )
    mirrored = sum(np.array_equal(im, array[:, ::-1]) for im in flipped)
    unchanged = sum(np.array_equal(im, array) for im in flipped)
    assert mirrored + unchanged == 32 and 4 <= mirrored <= 28


# ----------------------------------------------------------------------- batching and ordering


def test_shapes_labels_and_deterministic_order(tmp_path: Path) -> None:
    paths = [_save(tmp_path / f"{i}.png", np.full((10, 10, 3), i * 10, np.uint8)) for i in range(7)]
    ds = image_dataset(paths, list(range(7)), image_size=6, batch_size=3, standardization="none")
    batches = list(ds)
    assert [b[0].shape for b in batches] == [(3, 6, 6, 3), (3, 6, 6, 3), (1, 6, 6, 3)]
    labels = np.concatenate([b[1].numpy() for b in batches])
    values = np.concatenate([b[0].numpy()[:, 0, 0, 0] for b in batches])
    assert labels.tolist() == list(range(7)) and values.tolist() == [i * 10 for i in range(7)]

    # Shuffled with a seed: images stay with their labels and the order repeats across runs.
    def shuffled() -> tuple[list[int], list[float]]:
        ds = image_dataset(
            paths,
            list(range(7)),
            image_size=6,
            batch_size=7,
            standardization="none",
            shuffle=True,
            seed=9,
        )
        images, labels = next(iter(ds))
        return labels.numpy().tolist(), images.numpy()[:, 0, 0, 0].tolist()

    labels1, values1 = shuffled()
    assert sorted(labels1) == list(range(7)) and labels1 != list(range(7))
    assert values1 == [lab * 10 for lab in labels1]
    assert shuffled() == (labels1, values1)


def test_seeded_augmentation_is_reproducible(gradient) -> None:
    path, _ = gradient

    def run() -> np.ndarray:
        ds = image_dataset(
            [path] * 6, image_size=8, batch_size=6, random_crop=True, random_flip=True, seed=3
        )
        return _collect(ds)

    np.testing.assert_array_equal(run(), run())


def test_label_count_must_match(gradient) -> None:
    path, _ = gradient
    with pytest.raises(ValueError, match="2 labels for 1 paths"):
        image_dataset([path], [1, 2], image_size=8, batch_size=1)


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"hello, not an image", "not an image"), (b"", "empty file"), (None, "not found")],
)
def test_bad_files_give_one_line_errors_naming_them(
    gradient, tmp_path: Path, content: bytes | None, match: str
) -> None:
    good, _ = gradient
    bad = tmp_path / "bad.png"
    if content is not None:
        bad.write_bytes(content)
    ds = image_dataset([good, bad], image_size=8, batch_size=2)
    with pytest.raises(InputError, match=match) as info:
        with image_errors([good, bad]):
            list(ds)
    message = str(info.value)
    assert message.startswith(str(bad)) and "\n" not in message


def test_truncated_image_is_named(gradient, tmp_path: Path) -> None:
    good, _ = gradient
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(InputError, match="unreadable image") as info:
        with image_errors([good, bad]):
            list(image_dataset([good, bad], image_size=8, batch_size=2))
    assert str(info.value).startswith(str(bad))
