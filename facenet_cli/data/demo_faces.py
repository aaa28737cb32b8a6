"""The built-in demo dataset: 100 real LFW face crops turned into photos that need aligning.

``skimage.data.lfw_subset()`` ships 200 grey 25x25 crops; the first 100 are faces. Each face
becomes one identity (``face_000`` ... ``face_099``) with a few "photos": the face, upscaled to a
random size, tinted, slightly rotated and pasted at a random place on a larger textured
background, then the whole photo gets a brightness / contrast change, blur, noise and JPEG
compression. A face detector therefore has real work to do, and the aligned crops differ from
photo to photo. Identities ``face_000`` ... ``face_069`` are for training; the 30 held-out ones get
an LFW-format pairs file (10 folds).

Layout under the demo root (``facenet_cli.config.demo_dir()`` by default)::

    raw/train/face_000/face_000_0001.jpg     raw/test/face_070/...     pairs.txt
    aligned/train/face_000/face_000_0001.png aligned/test/face_070/... (written by ``align``)

The photos are built only when missing. A marker file, written last, records the build
parameters, so a crash mid-build (or other parameters) rebuilds from scratch.
"""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facenet_cli.errors import StorageError

DEMO_IMAGE_SIZE = 160
DEMO_MARGIN = 32
DEMO_PHOTOS_PER_IDENTITY = 10
DEMO_NROF_IDENTITIES = 100
DEMO_TRAIN_IDENTITIES = 70
DEMO_NROF_FOLDS = 10
DEMO_PAIRS_PER_FOLD = 30
# Sizes chosen so that MTCNN has work but aligning all 1000 photos stays cheap on a CPU. With
# seed 0 the mtcnn package finds a face in 984 of the 1000 photos and the batched aligner in 988
# (the misses are mostly face_004, a dark crop behind glasses).
BACKGROUND_SIZE = (200, 260)  # photo sides, pixels
FACE_SIZE = (80, 140)  # side of the pasted face, pixels
MAX_ROTATION = 10.0  # degrees
JPEG_QUALITY = 90

MARKER_NAME = ".photos-complete"
# Bumped whenever the generator changes, so that old caches are rebuilt.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class DemoPaths:
    """Where the parts of the demo dataset live."""

    root: Path
    raw_train: Path
    raw_test: Path
    aligned_train: Path
    aligned_test: Path
    pairs: Path


def demo_paths(root: Path | None = None) -> DemoPaths:
    """The demo layout under ``root`` (default: ``facenet_cli.config.demo_dir()``)."""
    if root is None:
        from facenet_cli.config import demo_dir

        root = demo_dir()
    root = Path(root).expanduser()
    return DemoPaths(
        root=root,
        raw_train=root / "raw" / "train",
        raw_test=root / "raw" / "test",
        aligned_train=root / "aligned" / "train",
        aligned_test=root / "aligned" / "test",
        pairs=root / "pairs.txt",
    )


def identity_name(index: int) -> str:
    """``face_007`` for the 8th face of the LFW subset."""
    return f"face_{index:03d}"


def demo_faces() -> np.ndarray:
    """The 100 grey face crops of ``skimage.data.lfw_subset()`` as uint8, shape (100, 25, 25)."""
    from skimage.data import lfw_subset

    faces = lfw_subset()[:DEMO_NROF_IDENTITIES]
    return np.clip(np.rint(faces * 255.0), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ photo synthesis


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int) -> np.ndarray:
    """Low-frequency RGB noise in [-1, 1]: a coarse random grid upscaled bicubically."""
    from PIL import Image

    grid = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.float32) * (2.0 / 255.0) - 1.0


def textured_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random colour gradient with blotches and stripes, as float32 RGB 0..255."""
    from PIL import Image

    # Drawn at half resolution and upscaled: the texture is smooth and the build twice as fast.
    h, w = (height + 1) // 2, (width + 1) // 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xs + np.sin(angle) * ys) / max(h, w)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    c0, c1 = rng.uniform(20, 235, (2, 3)).astype(np.float32)
    image = c0 + ramp[..., None] * (c1 - c0)
    for _ in range(2):  # blotches at two scales
        cells = int(rng.integers(3, 12))
        image += np.float32(rng.uniform(10, 45)) * _smooth_noise(rng, h, w, cells)
    if rng.random() < 0.6:  # stripes or a checker-like weave, periods 6..30 px at full size
        step = np.float32(2 * np.pi / rng.uniform(3, 15))
        theta = rng.uniform(0, np.pi)
        pattern = np.sin((np.cos(theta) * xs + np.sin(theta) * ys) * step)
        if rng.random() < 0.5:
            pattern *= np.sin((-np.sin(theta) * xs + np.cos(theta) * ys) * step)
        weights = (rng.uniform(8, 30) * rng.uniform(0.5, 1.0, 3)).astype(np.float32)
        image += pattern[..., None] * weights
    small = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    # No grain here: the finished photo gets its noise in synthesize_photo.
    return np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def _stretch(face: np.ndarray) -> np.ndarray:
    """Levels of a grey face stretched to 20..235: some LFW crops are dark and flat, and a
    detector (or a person) would miss them once the photo is darkened further."""
    low, high = np.percentile(face, [1, 99])
    scaled = (face.astype(np.float32) - low) * (215.0 / max(high - low, 1.0)) + 20.0
    return np.clip(scaled, 0, 255)


def synthesize_photo(face: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One demo photo of a 25x25 grey face, as uint8 RGB.

    The face is tinted with a random skin-like colour (random per photo, so colour is no cue to
    identity), upscaled to ``FACE_SIZE``, rotated by up to ``MAX_ROTATION`` degrees, pasted with a
    soft edge at a random position of a ``BACKGROUND_SIZE`` textured background; the photo then
    gets a brightness / contrast change, a Gaussian blur and noise.
    """
    from PIL import Image, ImageFilter

    height, width = (int(v) for v in rng.integers(BACKGROUND_SIZE[0], BACKGROUND_SIZE[1] + 1, 2))
    photo = textured_background(rng, height, width)

    size = int(rng.integers(FACE_SIZE[0], min(FACE_SIZE[1], height - 4, width - 4) + 1))
    tint = np.array([1.0, rng.uniform(0.78, 0.92), rng.uniform(0.62, 0.82)]) * rng.uniform(0.9, 1.1)
    rgb = np.clip(_stretch(face)[..., None] * tint, 0, 255).astype(np.uint8)
    face_image = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
    # Soft edge: a hard square border would be an easy, unnatural cue.
    mask = Image.new("L", (size, size), 0)
    inset = max(2, size // 25)
    mask.paste(255, (inset, inset, size - inset, size - inset))
    mask = mask.filter(ImageFilter.GaussianBlur(inset))
    angle = float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    face_image = face_image.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    mask = mask.rotate(angle, Image.Resampling.BICUBIC, expand=True)
    fw, fh = face_image.size
    top = int(rng.integers(0, max(height - fh, 0) + 1))
    left = int(rng.integers(0, max(width - fw, 0) + 1))
    fh, fw = min(fh, height - top), min(fw, width - left)
    alpha = np.asarray(mask, dtype=np.float32)[:fh, :fw, None] / 255.0
    patch = np.asarray(face_image, dtype=np.float32)[:fh, :fw]
    region = photo[top : top + fh, left : left + fw]
    photo[top : top + fh, left : left + fw] = alpha * patch + (1 - alpha) * region

    contrast = rng.uniform(0.75, 1.25)
    brightness = rng.uniform(-25, 25)
    photo = np.clip((photo - 128.0) * np.float32(contrast) + np.float32(128.0 + brightness), 0, 255)
    image = Image.fromarray(photo.astype(np.uint8))
    radius = float(rng.uniform(0.0, 1.2))
    if radius > 0.2:
        image = image.filter(ImageFilter.GaussianBlur(radius))
    noise = rng.standard_normal(photo.shape, dtype=np.float32) * np.float32(rng.uniform(2, 7))
    noisy = np.asarray(image, dtype=np.float32) + noise
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def photo_rng(seed: int, identity: int, photo: int) -> np.random.Generator:
    """The random stream of one photo: independent of build order, so builds can be resumed."""
    return np.random.default_rng([seed, identity, photo])


def encode_jpeg(photo: np.ndarray) -> bytes:
    """JPEG bytes of a uint8 RGB photo (fixed quality, no metadata: same array, same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- build


def demo_pairs_per_fold(photos_per_identity: int) -> int:
    """Matched pairs per fold of the demo pairs file.

    ``DEMO_PAIRS_PER_FOLD``, or fewer when so few photos per identity cannot supply that many
    distinct pairs.
    """
    held_out = DEMO_NROF_IDENTITIES - DEMO_TRAIN_IDENTITIES
    possible = held_out * photos_per_identity * (photos_per_identity - 1) // 2
    return max(1, min(DEMO_PAIRS_PER_FOLD, possible // DEMO_NROF_FOLDS))


def _marker(photos_per_identity: int, seed: int) -> dict[str, int]:
    return {
        "version": GENERATOR_VERSION,
        "seed": seed,
        "photos_per_identity": photos_per_identity,
        "identities": DEMO_NROF_IDENTITIES,
        "train_identities": DEMO_TRAIN_IDENTITIES,
        "nrof_folds": DEMO_NROF_FOLDS,
        "pairs_per_fold": demo_pairs_per_fold(photos_per_identity),
    }


def demo_photos_ready(
    root: Path | None = None,
    photos_per_identity: int = DEMO_PHOTOS_PER_IDENTITY,
    seed: int = 0,
) -> bool:
    """True when the photos and pairs file under ``root`` are complete for these parameters."""
    paths = demo_paths(root)
    try:
        recorded = json.loads((paths.root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        recorded == _marker(photos_per_identity, seed)
        and paths.raw_train.is_dir()
        and paths.raw_test.is_dir()
        and paths.pairs.is_file()
    )


class _BuildLock:
    """An exclusive lock on the demo root, so that two commands never build it at once."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".build.lock"
        self._fh: io.BufferedRandom | None = None

    def __enter__(self) -> _BuildLock:
        self._fh = open(self.path, "a+b")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)
        except ImportError:  # no flock on this platform: concurrent builds are then unguarded
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()  # closing releases the lock


def build_demo_photos(
    root: Path | None = None,
    photos_per_identity: int = DEMO_PHOTOS_PER_IDENTITY,
    seed: int = 0,
    force: bool = False,
    on_photo: Callable[[int, int], None] | None = None,
) -> DemoPaths:
    """Build the raw demo photos and the held-out pairs file, unless already built.

    Rebuilding removes the old ``raw/``, ``aligned/`` (which derives from raw) and
    ``pairs.txt``; trained models and logs are kept.

    Args:
        root: the demo root (default ``facenet_cli.config.demo_dir()``).
        photos_per_identity: photos of each of the 100 identities.
        seed: the same seed gives byte-identical photos and the same pairs.
        force: rebuild even when complete.
        on_photo: called as ``on_photo(done, total)`` after each photo (for progress bars).

    Returns:
        The demo layout.

    Raises:
        StorageError: the cache directory cannot be written.
    """
    from facenet_cli.data.pairs import make_pairs, write_pairs

    if photos_per_identity < 2:
        raise ValueError("photos_per_identity must be 2 or more (matched pairs need two photos)")
    paths = demo_paths(root)
    if not force and demo_photos_ready(paths.root, photos_per_identity, seed):
        return paths
    try:
        paths.root.mkdir(parents=True, exist_ok=True)
        with _BuildLock(paths.root):
            # Another process may have finished the build while this one waited for the lock.
            if not force and demo_photos_ready(paths.root, photos_per_identity, seed):
                return paths
            _build(paths, photos_per_identity, seed, on_photo, make_pairs, write_pairs)
    except OSError as exc:
        raise StorageError(
            f"{paths.root}: cannot write the demo dataset ({exc.strerror or exc})"
        ) from None
    return paths


def _build(
    paths: DemoPaths,
    photos_per_identity: int,
    seed: int,
    on_photo: Callable[[int, int], None] | None,
    make_pairs: Callable[..., list],
    write_pairs: Callable[..., Path],
) -> None:
    root = paths.root
    (root / MARKER_NAME).unlink(missing_ok=True)
    for stale in root.glob(".build-*"):  # left by a crashed build
        shutil.rmtree(stale, ignore_errors=True)
    staging = root / f".build-{os.getpid()}"
    faces = demo_faces()
    total = len(faces) * photos_per_identity
    done = 0
    for index, face in enumerate(faces):
        split = "train" if index < DEMO_TRAIN_IDENTITIES else "test"
        name = identity_name(index)
        folder = staging / "raw" / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for photo in range(1, photos_per_identity + 1):
            image = synthesize_photo(face, photo_rng(seed, index, photo))
            (folder / f"{name}_{photo:04d}.jpg").write_bytes(encode_jpeg(image))
            done += 1
            if on_photo is not None:
                on_photo(done, total)
    per_fold = demo_pairs_per_fold(photos_per_identity)
    # Folds drawn from all 30 held-out identities, as the published demo figures were measured.
    pairs = make_pairs(
        staging / "raw" / "test", DEMO_NROF_FOLDS, per_fold, seed=seed, disjoint=False
    )
    write_pairs(staging / "pairs.txt", pairs, DEMO_NROF_FOLDS, per_fold)

    # Swap the new build in; aligned crops of old photos would be stale, so they go too.
    for old in (root / "raw", root / "aligned"):
        if old.exists():
            shutil.rmtree(old)
    os.replace(staging / "raw", root / "raw")
    os.replace(staging / "pairs.txt", paths.pairs)
    shutil.rmtree(staging, ignore_errors=True)
    marker_tmp = root / f"{MARKER_NAME}.tmp"
    marker_tmp.write_text(json.dumps(_marker(photos_per_identity, seed)) + "\n", encoding="utf-8")
    os.replace(marker_tmp, root / MARKER_NAME)
