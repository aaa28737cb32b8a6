"""insightface verification packs (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``, ...), read safely.

A pack is ``pickle.dump((bins, issame_list), f)``: ``bins`` holds the 2 N encoded aligned images
(JPEG or PNG bytes; ``str`` in packs written by Python 2), two per pair in pair order, and
``issame_list`` the N labels (a list of bools, or a NumPy bool array in some packs). The pairs
come fold by fold, 10 contiguous folds, as in an LFW pairs file.

Unpickling runs whatever callables a pickle names, so a pack is read by :class:`_PackUnpickler`,
which resolves no global except those a pickled NumPy bool array names (each admitted only for
a bool array) and the ``_codecs.encode`` by which protocol 2 writes bytes (only text to latin-1
bytes). A pack that names anything else is refused with an :class:`UnsafePackError` (exit code
3) while it is read: nothing it names is called and no image is decoded.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facenet_cli.errors import InputError

# The first byte of a binary pickle (protocol 2 and later); packs are written with 2 to 5.
PICKLE_MAGIC = b"\x80"


class UnsafePackError(InputError):
    """A pack whose pickle names a callable outside the allow-list (exit code 3, bad input)."""


def _bool_dtype(name: Any, align: Any = False, copy: Any = True) -> np.dtype:
    # A bool array pickles its dtype as ``numpy.dtype('b1', False, True)``.
    if name not in ("b1", b"b1"):
        raise UnsafePackError(f"a NumPy dtype {name!r} (only a bool array is admitted)")
    return np.dtype("b1", bool(align), bool(copy))


def _bool_reconstruct(cls: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if cls is not np.ndarray:
        raise UnsafePackError(f"a NumPy array of class {cls!r}")
    return np.ndarray.__new__(np.ndarray, shape, "b1")


def _bool_frombuffer(buffer: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # Protocol 5 pickles an array as ``numpy._core.numeric._frombuffer(data, dtype, shape, order)``.
    if not isinstance(dtype, np.dtype) or dtype != np.bool_:
        raise UnsafePackError(f"a NumPy array of dtype {dtype!r} (only a bool array is admitted)")
    if not isinstance(buffer, bytes | bytearray | pickle.PickleBuffer):
        raise UnsafePackError(f"a NumPy array over a {type(buffer).__name__}")
    flat = np.frombuffer(bytes(buffer), dtype=np.bool_)
    return flat.reshape(tuple(int(n) for n in shape), order="F" if order == "F" else "C").copy()


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    # Protocol 2 pickles a Python 3 ``bytes`` as ``_codecs.encode(text, "latin1")``.
    if not isinstance(text, str) or encoding != "latin1":
        raise UnsafePackError(f"_codecs.encode of a {type(text).__name__} to {encoding!r}")
    return text.encode("latin1")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _bool_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _bool_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _bool_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _bool_frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _bool_dtype,
}


class _PackUnpickler(pickle.Unpickler):
    """Builds containers, bytes, strings, numbers and bools; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise UnsafePackError(f"the pickle names {module}.{name}")
        return allowed


@dataclass(frozen=True)
class VerificationPack:
    """The encoded images and labels of one pack.

    Attributes:
        path: the pack file.
        images: 2 N encoded images, the two of pair i at 2 i and 2 i + 1.
        issame: N bools, True for a matched pair.
    """

    path: Path
    images: list[bytes]
    issame: np.ndarray

    @property
    def nrof_pairs(self) -> int:
        return int(self.issame.size)

    def image_name(self, index: int) -> str:
        """How a report names image ``index`` of the pack (``lfw.bin#17``)."""
        return f"{self.path}#{index}"


def is_pack_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file that starts like a binary pickle (or is named ``*.bin``)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".bin":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(1) == PICKLE_MAGIC
    except OSError:
        return False


def load_pack_bytes(data: bytes, path: Path) -> VerificationPack:
    """Unpickle a pack's bytes with the restricted unpickler and check its shape.

    Raises:
        UnsafePackError: the pickle names a callable outside the allow-list.
        InputError: not a pickle, or not ``(images, issame)`` of 2 N byte strings and N bools.
    """
    unpickler = _PackUnpickler(io.BytesIO(data), encoding="bytes")
    try:
        loaded = unpickler.load()  # noqa: S301 - find_class admits only a NumPy bool array's globals
    except UnsafePackError as exc:
        raise UnsafePackError(
            f"{path}: refused as unsafe, nothing in it was run: {exc} (a verification pack "
            "holds only images and labels)"
        ) from None
    except RecursionError:
        raise InputError(
            f"{path}: not an insightface verification pack (nested too deep)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a pack"
        raise InputError(
            f"{path}: not an insightface verification pack ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'unreadable pickle'})"
        ) from None
    return _checked(loaded, path)


def _checked(loaded: Any, path: Path) -> VerificationPack:
    if not isinstance(loaded, tuple | list) or len(loaded) != 2:
        raise InputError(
            f"{path}: not an insightface verification pack (expected a pair (images, issame), "
            f"got {type(loaded).__name__})"
        )
    bins, issame = loaded
    if not isinstance(bins, list | tuple):
        raise InputError(f"{path}: the pack's images are a {type(bins).__name__}, not a list")
    images: list[bytes] = []
    for i, b in enumerate(bins):
        if isinstance(b, bytearray):
            b = bytes(b)
        if not isinstance(b, bytes):
            raise InputError(
                f"{path}: image {i} of the pack is a {type(b).__name__}, not encoded image bytes"
            )
        images.append(b)
    if isinstance(issame, np.ndarray):
        if issame.dtype != np.bool_ or issame.ndim != 1:
            raise InputError(f"{path}: the pack's labels are not a 1-D bool array")
        labels = issame.copy()
    elif isinstance(issame, list | tuple) and all(isinstance(v, bool) for v in issame):
        labels = np.asarray(issame, dtype=bool)
    else:
        raise InputError(f"{path}: the pack's labels are not a list of bools")
    if len(images) != 2 * labels.size:
        raise InputError(
            f"{path}: the pack holds {len(images)} images for {labels.size} pairs "
            f"(two per pair: {2 * labels.size})"
        )
    if labels.size == 0:
        raise InputError(f"{path}: the pack holds no pairs")
    return VerificationPack(path=path, images=images, issame=labels)


def read_pack(path: str | os.PathLike[str]) -> VerificationPack:
    """Read an insightface verification pack without running any code it could name.

    Args:
        path: the ``.bin`` file.

    Returns:
        A :class:`VerificationPack` (images still encoded).

    Raises:
        UnsafePackError: the pickle names a callable other than a NumPy bool array's.
        InputError: the file is missing, unreadable or not a pack.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: verification pack not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a verification pack") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read verification pack ({exc.strerror})") from None
    if not data.startswith(PICKLE_MAGIC):
        raise InputError(f"{path}: not an insightface verification pack (not a binary pickle)")
    return load_pack_bytes(data, path)


def write_pack(
    path: str | os.PathLike[str], images: list[bytes], issame: list[bool] | np.ndarray
) -> Path:
    """Write ``(images, issame)`` as insightface does (for making packs of one's own crops).

    Raises:
        ValueError: not two images per label.
    """
    labels = [bool(v) for v in issame]
    if len(images) != 2 * len(labels):
        raise ValueError(f"{len(images)} images for {len(labels)} pairs (two per pair)")
    path = Path(path)
    with open(path, "wb") as f:
        pickle.dump(([bytes(b) for b in images], labels), f, protocol=4)
    return path


# ------------------------------------------------------------------------------------ decoding


def _first_undecodable(pack: VerificationPack) -> tuple[int, str] | None:
    from facenet_cli.data.images import DecodeError, decode_bytes

    for i, b in enumerate(pack.images):
        try:
            decode_bytes(b)
        except DecodeError as exc:
            return i, str(exc)
    return None


def pack_batches(pack: VerificationPack, image_size: int, batch_size: int) -> Iterator[np.ndarray]:
    """The pack's images decoded once, centre-cropped or padded as the folder path does.

    The same ops as ``image_dataset`` for files (``tf.io.decode_image`` to 3-channel uint8, then
    ``resize_with_crop_or_pad``), on the bytes in memory: the same crops give the same pixels
    from a pack as from a folder, and nothing is written to disk.

    Yields:
        Float32 ``(B, S, S, 3)`` raw-pixel batches, in pack order.

    Raises:
        InputError: an image that does not decode (named by its index in the pack).
    """
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(pack.images, dtype=tf.string))

    def load(contents: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)
        image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
        image = tf.cast(image, tf.float32)
        image.set_shape([image_size, image_size, 3])
        return image

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if not tf.config.list_physical_devices("GPU"):
        # As for files (``pairs_embedding._dataset``): on a CPU the decoders share the cores
        # with the forward pass; half of them keeps the model's intra-op threads running.
        from facenet_cli.cpu import cpu_count

        options = tf.data.Options()
        options.threading.private_threadpool_size = max(1, cpu_count() // 2)
        ds = ds.with_options(options)
    try:
        for batch in ds:
            yield batch.numpy()
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        bad = _first_undecodable(pack)
        where = f"image {bad[0]} ({bad[1]})" if bad else "an image"
        raise InputError(f"{pack.path}: {where} of the pack does not decode") from None


def pack_image(pack: VerificationPack, index: int) -> np.ndarray:
    """Image ``index`` of the pack as uint8 RGB (for contact sheets)."""
    from facenet_cli.data.images import DecodeError, decode_bytes

    try:
        return decode_bytes(pack.images[index])
    except DecodeError as exc:
        raise InputError(
            f"{pack.path}: image {index} of the pack does not decode ({exc})"
        ) from None
