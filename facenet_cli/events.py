"""TensorFlow-free event-file knowledge shared by ``train`` (writer) and ``board`` (reader).

The scalar tag names live here, once, followed by the reader the dashboard uses: TFRecord
framing read from a remembered offset with both CRCs checked (google-crc32c), events decoded
with TensorBoard's protobuf classes or, for the common scalar layouts, all at once with NumPy.
Run markers: ``train`` writes ``<logdir>/<run>/FINISHED`` or ``FAILED`` (first line: the
reason) when a run ends. This module must never import TensorFlow or Keras.
"""

from __future__ import annotations

import bisect
import functools
import os
import re
import struct
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google_crc32c import value as _crc32c

# Training, one value per global step.
LOSS = "loss"
LEARNING_RATE = "learning_rate"
TRIPLETS_SELECTED = "triplets/selected"
TRIPLETS_PAIRS = "triplets/pairs"
TRIPLETS_ACTIVE_FRACTION = "triplets/active_fraction"
TRIPLETS_POS_DIST = "triplets/pos_dist"
TRIPLETS_NEG_DIST = "triplets/neg_dist"
TIME_SELECTION = "time/selection"
TIME_STEP = "time/step"
TIME_DATA_WAIT = "time/data_wait"
TIME_SAVE_VARIABLES = "time/save_variables"
IMAGES_PER_SEC = "perf/images_per_sec"
LOSS_SCALE = "perf/loss_scale"
EPOCH = "epoch"
TOTAL_STEPS = "progress/total_steps"  # planned steps (log once); the board shows an ETA

# Memory: per GPU (``gpu/memory_current_mb/GPU:0``) or, without a GPU, the host's RSS.
GPU_MEMORY_CURRENT_MB = "gpu/memory_current_mb"
GPU_MEMORY_PEAK_MB = "gpu/memory_peak_mb"
HOST_RSS_MB = "host/rss_mb"

# Evaluation, one value per evaluation (at the global step it ran).
LFW_ACCURACY = "lfw/accuracy"
LFW_ACCURACY_STD = "lfw/accuracy_std"
LFW_VAL_RATE = "lfw/val_rate"
LFW_FAR = "lfw/far"
LFW_AUC = "lfw/auc"
LFW_EER = "lfw/eer"
TIME_LFW = "time/lfw"

TRAIN_TAGS = (
    LOSS,
    LEARNING_RATE,
    TRIPLETS_SELECTED,
    TRIPLETS_PAIRS,
    TRIPLETS_ACTIVE_FRACTION,
    TRIPLETS_POS_DIST,
    TRIPLETS_NEG_DIST,
    TIME_SELECTION,
    TIME_STEP,
    TIME_DATA_WAIT,
    IMAGES_PER_SEC,
)
LFW_TAGS = (LFW_ACCURACY, LFW_ACCURACY_STD, LFW_VAL_RATE, LFW_FAR, LFW_AUC, LFW_EER, TIME_LFW)

# Classifier training (``--loss softmax|arcface|cosface``), one value per global step; ``loss``
# stays the total loss. Validation on held-out images of the training identities.
CLS_CROSS_ENTROPY = "classifier/cross_entropy"
CLS_CENTER_LOSS = "classifier/center_loss"
CLS_REGULARIZATION = "classifier/regularization"
CLS_ACCURACY = "classifier/accuracy"
CLS_PRELOGITS_NORM = "classifier/prelogits_norm"
VAL_LOSS = "validation/loss"
VAL_ACCURACY = "validation/accuracy"
CLASSIFIER_TAGS = (
    CLS_CROSS_ENTROPY,
    CLS_CENTER_LOSS,
    CLS_REGULARIZATION,
    CLS_ACCURACY,
    CLS_PRELOGITS_NORM,
    VAL_LOSS,
    VAL_ACCURACY,
)


def gpu_tag(base: str, device: str) -> str:
    """Per-device memory tag, e.g. ``gpu_tag(GPU_MEMORY_PEAK_MB, "GPU:0")``."""
    return f"{base}/{device}"


EVENT_FILE_GLOB = "events.out.tfevents.*"


# ----------------------------------------------------------------------------------------------
# The reader: TFRecord framing, CRC-checked, parsed with TensorBoard's protobuf classes.
#
# A file is read incrementally from a remembered byte offset: a partly written last record stays
# unread until the next poll, a record whose CRC does not match is counted and skipped, and a
# resumed run (steps going back) keeps the newest session's points, as TensorBoard does.

FINISHED_MARKER = "FINISHED"
"""File ``<logdir>/<run>/FINISHED`` written by ``train`` when a run ends normally."""
FAILED_MARKER = "FAILED"
"""File ``<logdir>/<run>/FAILED`` written by ``train`` when a run stops on an error; its first
line (optional) is the reason shown by the board."""

READ_CHUNK = 64 * 2**20
"""Bytes read from a file at a time (a large log is read in pieces, not all at once)."""
DEFAULT_POINT_CAP = 1_000_000
"""Points kept per tag before the reader starts thinning that tag (and says so)."""

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length bytes
_U32 = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_MASK_DELTA = 0xA282EAD8
_FILE_TIME = re.compile(r"tfevents\.(\d+)")
_MARK_BYTES = 64  # kept from both ends of what was read, to recognise the same file later


def masked_crc32c(data: bytes | memoryview) -> int:
    """TFRecord's masked CRC-32C of ``data`` (the C implementation from ``google-crc32c``)."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, ``data``, masked CRC of ``data``."""
    length = struct.pack("<Q", len(data))
    return length + _U32.pack(masked_crc32c(length)) + data + _U32.pack(masked_crc32c(data))


@dataclass
class RecordScan:
    """What :func:`split_records` found in a buffer."""

    buf: bytes
    starts: np.ndarray
    """Offset of each valid record's data in ``buf``."""
    lengths: np.ndarray
    """Length of each valid record's data."""
    consumed: int
    """Bytes that are done with; a partial last record starts here."""
    corrupt: int
    """Corrupt regions skipped (a bad data CRC, or garbage until the next valid header)."""
    resyncing: bool
    """The buffer ended inside garbage: the next scan continues the same corrupt region."""
    data: _Bytes | None = None
    """``buf`` as numbers (reused by the event decoder)."""

    @property
    def records(self) -> list[bytes]:
        """The valid records' data, in file order."""
        return [
            self.buf[s : s + n]
            for s, n in zip(self.starts.tolist(), self.lengths.tolist(), strict=True)
        ]


def _masked(crcs: np.ndarray) -> np.ndarray:
    return (((crcs >> 15) | (crcs << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def _crcs(buf: bytes, starts: list[int], stops: list[int]) -> np.ndarray:
    # map() keeps the per-record loop in C: one google-crc32c call per slice (it takes bytes,
    # not memoryviews).
    slices = map(buf.__getitem__, map(slice, starts, stops))
    return _masked(np.fromiter(map(_crc32c, slices), dtype=np.uint64, count=len(starts)))


class _Bytes:
    """A buffer with zero padding, readable as any little-endian number at any byte offset.

    ``at("<u8", offsets)`` reads one 8-byte integer per offset in a single NumPy gather from a
    byte-strided view: no Python loop and no (n, width) index matrix. Offsets are clamped to
    the data, so garbage positions read something harmless (the caller's checks reject them);
    they must not be negative.
    """

    _PAD = 16

    def __init__(self, buf: bytes) -> None:
        self.size = len(buf)
        self.u8 = np.zeros(len(buf) + self._PAD, dtype=np.uint8)
        self.u8[: len(buf)] = np.frombuffer(buf, dtype=np.uint8)
        self._views: dict[str, np.ndarray] = {}

    def view(self, dtype: str) -> np.ndarray:
        """Every offset's value of ``dtype`` (a strided view, no copy)."""
        v = self._views.get(dtype)
        if v is None:
            width = np.dtype(dtype).itemsize
            v = self._views[dtype] = np.ndarray(
                shape=(len(self.u8) - width + 1,), dtype=dtype, buffer=self.u8.data, strides=(1,)
            )
        return v

    def at(self, dtype: str, offsets: np.ndarray) -> np.ndarray:
        """The value of ``dtype`` at each offset."""
        return self.view(dtype)[np.minimum(offsets, self.size)]


@functools.cache
def _header_crc_tables() -> tuple[np.ndarray, int]:
    # CRC-32C is affine in its input for a fixed length: crc(a ^ b) = crc(a) ^ crc(b) ^ crc(0).
    # So the CRC of any 8-byte length field is crc(0) xor one table entry per byte; the
    # tables come from google-crc32c itself, and NumPy then checks every header in one pass.
    zero = _crc32c(bytes(8))
    tables = np.empty((8, 256), dtype=np.uint64)
    for j in range(8):
        for v in range(256):
            msg = bytearray(8)
            msg[j] = v
            tables[j, v] = _crc32c(bytes(msg)) ^ zero
    return tables, zero


def _length_crcs(b: _Bytes, heads: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of the 8-byte length field at each header offset."""
    tables, zero = _header_crc_tables()
    field = b.at("<u8", heads)
    crc = np.full(len(heads), zero, dtype=np.uint64)
    for j in range(8):
        crc ^= tables[j][(field >> np.uint64(8 * j)) & np.uint64(0xFF)]
    return _masked(crc)


def _u32_at(b: _Bytes, offsets: np.ndarray) -> np.ndarray:
    return b.at("<u4", offsets).astype(np.uint64)


def split_records(buf: bytes, *, resyncing: bool = False) -> RecordScan:
    """Split ``buf`` into complete TFRecords, checking both CRCs of each.

    Lengths are walked first and the CRCs then checked in one pass each (the CRC itself is
    google-crc32c's C code); a bad length CRC means everything walked past it is suspect, so
    the walk restarts at the next offset whose header checks out.

    Args:
        buf: Bytes read from a record file, starting at a record boundary (or inside garbage
            when ``resyncing``).
        resyncing: The previous scan ended inside a corrupt region; do not count it again.

    Returns:
        The valid records, how many bytes were consumed, and the corrupt count. A record
        whose header or data is not fully in ``buf`` is left for later.
    """
    b = _Bytes(buf)
    end = len(buf)
    unpack_length = _LENGTH.unpack_from
    all_starts: list[np.ndarray] = []
    all_lengths: list[np.ndarray] = []
    corrupt = 0
    pos = 0
    while True:
        chained, p = _chain_records(b, pos, end)
        heads: list[int] = []
        append = heads.append
        while end - p >= 12:
            stop = p + 16 + unpack_length(buf, p)[0]
            if stop > end:
                break
            append(p)
            p = stop
        h = np.concatenate([chained, np.array(heads, dtype=np.int64)])
        n = len(h)
        good = n
        if n > len(chained):  # chained headers were checked already
            walked = h[len(chained) :]
            bad = np.flatnonzero(_length_crcs(b, walked) != _u32_at(b, walked + 8))
            good = len(chained) + int(bad[0]) if bad.size else n
        if good:
            data_starts = h[:good] + 12
            data_lengths = b.at("<u8", h[:good]).astype(np.int64)
            stops = data_starts + data_lengths
            ok = _crcs(buf, data_starts.tolist(), stops.tolist()) == _u32_at(b, stops)
            corrupt += int(good - ok.sum())
            all_starts.append(data_starts[ok])
            all_lengths.append(data_lengths[ok])
            resyncing = False
        if good < n:
            pos = int(h[good])
        else:
            pos = p
            if end - pos < 12:
                break
            if masked_crc32c(buf[pos : pos + 8]) == _U32.unpack_from(buf, pos + 8)[0]:
                break  # a valid header whose record is still being written
        # The length at ``pos`` cannot be trusted: find the next offset where a header checks out.
        if not resyncing:
            corrupt += 1
            resyncing = True
        nxt = _find_header(buf, pos + 1)
        if nxt < 0:
            pos = max(pos, end - 11)
            break
        pos = nxt
    empty = np.empty(0, dtype=np.int64)
    return RecordScan(
        buf,
        np.concatenate(all_starts) if all_starts else empty,
        np.concatenate(all_lengths) if all_lengths else empty,
        pos,
        corrupt,
        resyncing,
        b,
    )


def _chain_records(b: _Bytes, start: int, end: int) -> tuple[np.ndarray, int]:
    """Offsets of the complete records chained from ``start``, found without a Python loop.

    Every offset whose 8-byte length field has zero high bytes is a candidate; candidates
    whose length CRC checks out are headers, and they are accepted for as long as each one's
    record ends exactly where the next begins. Whatever does not chain (a corrupt region, a
    partial record, a record of 4 GiB or more) is left to the record-by-record walk.

    Returns:
        The accepted offsets and the offset just after the last accepted record.
    """
    empty = np.empty(0, dtype=np.int64)
    if end - start < 16:
        return empty, start
    # The high four bytes of the little-endian length, read at every offset at once.
    high = b.view("<u4")[start + 4 : end - 11]
    cand = np.flatnonzero(high == 0) + start
    if not len(cand) or cand[0] != start:
        return empty, start
    cand = cand[b.at("<u8", cand) <= np.uint64(end) - cand.astype(np.uint64) - np.uint64(16)]
    cand = cand[_length_crcs(b, cand) == _u32_at(b, cand + 8)]
    if not len(cand) or cand[0] != start:
        return empty, start
    nxt = cand + 16 + b.at("<u8", cand).astype(np.int64)
    broken = np.flatnonzero((nxt[:-1] != cand[1:]) | (nxt[:-1] > end))
    k = int(broken[0]) + 1 if broken.size else len(cand)
    if k == len(cand) and nxt[-1] > end:
        k -= 1  # the last record is still being written
    if k == 0:
        return empty, start
    return cand[:k], int(nxt[k - 1])


def _find_header(buf: bytes, start: int) -> int:
    """First offset >= ``start`` holding a header whose CRC matches, or -1."""
    unpack_header = _HEADER.unpack_from
    for i in range(start, len(buf) - 11):
        length_crc = unpack_header(buf, i)[1]
        if masked_crc32c(buf[i : i + 8]) == length_crc:
            return i
    return -1


def iter_file_records(path: str | os.PathLike[str]) -> Iterator[bytes]:
    """Every complete, CRC-valid record of a TFRecord file (corrupt ones skipped)."""
    yield from split_records(Path(path).read_bytes()).records


# ------------------------------------------------------------------------------------ scalars


class ScalarSeries:
    """One tag's points in step order: steps, wall times and values in compact arrays.

    Every point is kept up to ``cap``; past it the series keeps every other point and doubles
    ``thinned`` (the board shows the factor), and keeps taking one point in ``thinned`` so the
    density stays even. ``latest`` is always the newest point read, thinned or not.
    """

    __slots__ = ("steps", "wall_times", "values", "cap", "thinned", "_skip", "latest")

    def __init__(self, cap: int = DEFAULT_POINT_CAP) -> None:
        self.steps = array("q")
        self.wall_times = array("d")
        self.values = array("d")
        self.cap = max(2, cap)
        self.thinned = 1
        self._skip = 0  # points read since the newest stored one (while thinning)
        self.latest: tuple[int, float, float] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, wall_time: float, value: float) -> None:
        """Append a point; a step at or before the last one drops the points it replaces."""
        self.extend(
            np.array([step], dtype=np.int64),
            np.array([wall_time], dtype=np.float64),
            np.array([value], dtype=np.float64),
        )

    def extend(self, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray) -> None:
        """Append points in the order they were written.

        A resumed run writes steps again: a point is replaced by any later point at the same
        or an earlier step, which keeps the newest session's points, as TensorBoard does.
        """
        n = len(steps)
        if n == 0:
            return
        steps = np.asarray(steps, dtype=np.int64)
        suffix_min = np.minimum.accumulate(steps[::-1])[::-1]
        keep = np.ones(n, dtype=bool)
        keep[:-1] = steps[:-1] < suffix_min[1:]
        if len(self.steps) and suffix_min[0] <= self.steps[-1]:
            self.truncate(int(suffix_min[0]))
        self.latest = (int(steps[-1]), float(wall_times[-1]), float(values[-1]))
        if not keep.all():
            steps, wall_times, values = steps[keep], wall_times[keep], values[keep]
        if self.thinned > 1:
            # Keep taking one point in ``thinned`` so the density stays even.
            t = self.thinned
            idx = np.arange(max(0, t - 1 - self._skip), len(steps), t)
            self._skip = len(steps) - 1 - int(idx[-1]) if len(idx) else self._skip + len(steps)
            steps, wall_times, values = steps[idx], wall_times[idx], values[idx]
        else:
            self._skip = 0
        self.steps.frombytes(np.ascontiguousarray(steps, dtype=np.int64).tobytes())
        self.wall_times.frombytes(np.ascontiguousarray(wall_times, dtype=np.float64).tobytes())
        self.values.frombytes(np.ascontiguousarray(values, dtype=np.float64).tobytes())
        while len(self.steps) >= self.cap:
            if len(self.steps) % 2 == 0:
                self._skip += self.thinned  # the newest stored point goes: count what it covered
            self.steps = self.steps[::2]
            self.wall_times = self.wall_times[::2]
            self.values = self.values[::2]
            self.thinned *= 2

    def truncate(self, step: int) -> None:
        """Drop the points at ``step`` and after (a resumed run replaces them)."""
        i = bisect.bisect_left(self.steps, step)
        if i < len(self.steps):
            del self.steps[i:]
            del self.wall_times[i:]
            del self.values[i:]
        if self.latest is not None and self.latest[0] >= step:
            self.latest = (
                (self.steps[-1], self.wall_times[-1], self.values[-1]) if self.steps else None
            )


@dataclass
class FileCursor:
    """How far one event file has been read."""

    path: Path
    offset: int = 0
    size: int = 0
    mtime: float = 0.0
    resyncing: bool = False
    identity: tuple[int, int] | None = None
    """``(st_dev, st_ino)`` when last read: another file under the same name differs."""
    head: bytes = b""
    """The file's first bytes (up to ``_MARK_BYTES``) as read: a rewrite changes them."""
    tail: bytes = b""
    """The bytes just before ``offset`` (up to ``_MARK_BYTES``: the last record's CRCs)."""


@dataclass
class RunState:
    """Everything read so far from one run's event files."""

    name: str
    path: Path
    series: dict[str, ScalarSeries] = field(default_factory=dict)
    files: dict[Path, FileCursor] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    events: int = 0
    corrupt_records: int = 0
    first_wall_time: float | None = None
    last_wall_time: float | None = None
    last_write: float = 0.0
    """Newest modification time (local clock) of the run's event files."""
    marker: str | None = None
    """``"finished"`` or ``"failed"`` when train left a marker file, else None."""
    marker_reason: str = ""
    version: int = 0
    """Bumped on every change, so viewers can tell whether to redraw."""

    @property
    def last_step(self) -> int | None:
        """The largest step among the newest points of all tags."""
        steps = [s.latest[0] for s in self.series.values() if s.latest is not None]
        return max(steps) if steps else None

    def latest_values(self) -> dict[str, float]:
        """Tag -> newest value."""
        return {tag: s.latest[2] for tag, s in self.series.items() if s.latest is not None}


# The scalar events TensorFlow 2 (tf.summary), TensorFlow 1 (simple_value) and EventWriter
# write have one fixed layout apart from the varints, the tag and the value. Those are decoded
# for all records at once with NumPy; any record that differs goes through the protobuf parser.
_SCALARS_METADATA = bytes.fromhex("4a0b0a090a07") + b"scalars"
_META_HEAD = int.from_bytes(_SCALARS_METADATA[:8], "little")
_META_TAIL = int.from_bytes(_SCALARS_METADATA[-8:], "little")
_VALUE_TEMPLATES = (  # bytes of the Value after its tag, up to the number; the number's dtype
    (b"\x15", "<f4"),  # simple_value
    (bytes.fromhex("420a080112002204"), "<f4"),  # tensor: DT_FLOAT, shape {}, tensor_content
    (bytes.fromhex("420808012204"), "<f4"),
    (bytes.fromhex("420a080112002a04"), "<f4"),  # float_val
    (bytes.fromhex("420808012a04"), "<f4"),
    (bytes.fromhex("420e080212002208"), "<f8"),  # DT_DOUBLE
    (bytes.fromhex("420c08022208"), "<f8"),
    (bytes.fromhex("420e080212003208"), "<f8"),  # double_val
    (bytes.fromhex("420c08023208"), "<f8"),
)
_MAX_FAST_TAG = 255
_VARINT_BYTES = 5  # any step below 2**35; longer varints go to the protobuf parser


def _field_varint(
    b: _Bytes, pos: np.ndarray, key: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-byte field key and the varint after it, from one 8-byte read per offset.

    Returns:
        The varint values, the bytes taken (key included), and whether the key matched and
        the varint ended within ``_VARINT_BYTES`` bytes.
    """
    word = b.at("<u8", pos).astype(np.int64)  # key + 5 varint bytes: the sign bit is never used
    matched = (word & 0xFF) == key
    word >>= 8
    value = word & 0x7F
    nbytes = np.full(len(pos), 2, dtype=np.int64)
    more = (word & 0x80) != 0
    for k in range(1, _VARINT_BYTES):
        if not more.any():
            break
        byte = (word >> (8 * k)) & 0xFF
        value = np.where(more, value | ((byte & 0x7F) << (7 * k)), value)
        nbytes += more
        more &= (byte & 0x80) != 0
    return value, nbytes, matched & ~more


def _decode_scalar_events(
    b: _Bytes, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Vectorised decode of scalar events: one or many values per summary.

    Values are taken slot by slot (the first value of every record, then the second of the
    records that have one, ...), so an event holding a whole step's scalars, as the training
    loop writes, decodes as fast as one holding a single scalar.

    Returns:
        ``ok`` and ``wall`` per record (``ok``: every value had an expected layout), then per
        point: its record, tag offset and length, step, wall time, value and whether it
        declared the scalars plugin. Points of records that are not ``ok`` are left out.
    """
    ends = starts + lengths
    ok = (lengths >= 11) & (b.at("u1", starts) == 0x09)  # wall_time, fixed64
    wall = b.at("<f8", starts + 1)
    p = starts + 9
    step, nb, has_step = _field_varint(b, p, 0x10)
    step = np.where(has_step, step, 0)
    p = np.where(has_step, p + nb, p)
    size, nb, valid = _field_varint(b, p, 0x2A)  # Event.summary, running to the record's end
    p = p + nb
    ok &= valid & (p + size == ends)
    head_meta, tail_meta = np.uint64(_META_HEAD), np.uint64(_META_TAIL)
    meta = len(_SCALARS_METADATA)
    parts: list[tuple[np.ndarray, ...]] = []
    active = np.flatnonzero(ok & (p < ends))
    while len(active):
        q, e = p[active], ends[active]
        vlen, nb, good = _field_varint(b, q, 0x0A)  # Summary.value
        vstart = q + nb
        vend = vstart + vlen
        tag_len, nb, valid = _field_varint(b, vstart, 0x0A)  # Value.tag
        tag_start = vstart + nb
        r = tag_start + tag_len
        good &= (vend <= e) & valid & (tag_len <= _MAX_FAST_TAG) & (r < vend)
        payload = vend - r
        declared = payload >= meta
        if declared.any():
            declared &= b.at("<u8", np.maximum(vend - meta, 0)) == head_meta
            declared &= b.at("<u8", vend - 8) == tail_meta
        core = payload - meta * declared
        head = b.at("<u8", r)
        value = np.full(len(active), np.nan)
        matched = np.zeros(len(active), dtype=bool)
        for prefix, dtype in _VALUE_TEMPLATES:
            k = len(prefix)
            m = good & ~matched & (core == k + np.dtype(dtype).itemsize)
            m &= (head & np.uint64((1 << (8 * k)) - 1)) == np.uint64(
                int.from_bytes(prefix, "little")
            )
            if not m.any():
                continue
            if k == 1 and dtype == "<f4":  # simple_value: its bytes are already in ``head``
                value[m] = (
                    ((head[m] >> np.uint64(8)) & np.uint64(0xFFFFFFFF))
                    .astype(np.uint32)
                    .view(np.float32)
                )
            else:
                value[m] = b.at(dtype, r[m] + k)
            matched |= m
        good &= matched
        ok[active[~good]] = False
        done = active[good]
        parts.append((done, tag_start[good], tag_len[good], value[good], declared[good]))
        p[done] = vend[good]
        active = done[p[done] < ends[done]]
    if parts:
        rec, tag_start, tag_len, value, declared = (
            np.concatenate(c) for c in zip(*parts, strict=True)
        )
        keep = ok[rec]
        rec, tag_start, tag_len, value, declared = (
            rec[keep],
            tag_start[keep],
            tag_len[keep],
            value[keep],
            declared[keep],
        )
    else:
        rec = tag_start = tag_len = np.empty(0, dtype=np.int64)
        value = np.empty(0)
        declared = np.empty(0, dtype=bool)
    return ok, wall, rec, tag_start, tag_len, step[rec], wall[rec], value, declared


def _tag_ids(b: _Bytes, tag_start: np.ndarray, tag_len: np.ndarray) -> tuple[np.ndarray, list]:
    """Group records by tag bytes: an id per record and each id's tag (None if not unique).

    Tags are hashed eight bytes at a time; every record is then compared word by word with its
    group's first record, so a hash collision is detected (those records get id -1).
    """
    n = len(tag_start)
    words = []
    digest = tag_len.astype(np.uint64)
    with np.errstate(over="ignore"):
        for w in range(int(-(-int(tag_len.max()) // 8)) if n else 0):
            left = np.clip(tag_len - 8 * w, 0, 8)
            mask = np.where(
                left >= 8,
                np.uint64(2**64 - 1),
                (np.uint64(1) << (8 * left).astype(np.uint64)) - np.uint64(1),
            )
            word = b.at("<u8", tag_start + 8 * w) & mask
            words.append(word)
            digest = (digest * np.uint64(0x100000001B3)) ^ word
    uniq, first, inverse = np.unique(digest, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    same = tag_len == tag_len[first][inverse]
    for word in words:
        same &= word == word[first][inverse]
    ids = np.where(same, inverse, -1)
    names = []
    for i in first.tolist():
        s = int(tag_start[i])
        names.append(bytes(b.u8[s : s + int(tag_len[i])]).decode("utf-8", errors="replace"))
    return ids, names


class EventParser:
    """Turns event records into scalar points of a :class:`RunState`."""

    def __init__(self, cap: int = DEFAULT_POINT_CAP) -> None:
        # Importing the protos here keeps ``import facenet_cli.events`` (tag names only) cheap.
        from tensorboard.compat.proto import event_pb2

        self._event_cls = event_pb2.Event
        self.cap = cap

    def feed(self, run: RunState, records: list[bytes]) -> int:
        """Parse ``records`` (one bytes object each) into ``run``; returns the unparsable count."""
        buf = b"".join(records)
        lengths = np.array([len(r) for r in records], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        return self.feed_scan(run, buf, starts, lengths)

    def feed_scan(
        self,
        run: RunState,
        buf: bytes,
        starts: np.ndarray,
        lengths: np.ndarray,
        data: _Bytes | None = None,
    ) -> int:
        """Parse the records at ``starts``/``lengths`` of ``buf`` into ``run``.

        Returns:
            How many records were not valid Event protos (counted as corrupt).
        """
        n = len(starts)
        if n == 0:
            return 0
        b = _Bytes(buf) if data is None else data
        ok, rec_walls, prec, tag_start, tag_len, steps, walls, values, declared = (
            _decode_scalar_events(b, starts, lengths)
        )
        tag_ids = np.empty(0, dtype=np.int64)
        tag_names: list[str] = []
        if len(prec):
            tag_ids, tag_names = _tag_ids(b, tag_start, tag_len)
            if (tag_ids < 0).any():  # a hash collision: let the protobuf parser sort it out
                ok[prec[tag_ids < 0]] = False
            keep = ok[prec]
            prec, tag_ids, steps, walls, values, declared = (
                prec[keep],
                tag_ids[keep],
                steps[keep],
                walls[keep],
                values[keep],
                declared[keep],
            )
            for i in np.unique(tag_ids[declared]).tolist():
                run.plugins[tag_names[i]] = "scalars"
        # Records of any other shape: the protobuf parser, one at a time.
        bad = 0
        starts_log: list[tuple[int, int]] = []
        slow_idx: list[int] = []
        slow_tags: list[int] = []
        slow_steps: list[int] = []
        slow_walls: list[float] = []
        slow_values: list[float] = []
        name_ids = {name: i for i, name in enumerate(tag_names)}
        wall_lo, wall_hi = np.inf, -np.inf
        for i in np.flatnonzero(~ok).tolist():
            s = int(starts[i])
            parsed = self._parse_one(run, buf[s : s + int(lengths[i])])
            if parsed is None:
                bad += 1
                continue
            wall, points, session_start = parsed
            wall_lo, wall_hi = min(wall_lo, wall), max(wall_hi, wall)
            if session_start is not None:
                starts_log.append((i, session_start))
            for tag, step, value in points:
                known = name_ids.get(tag)
                if known is None:
                    known = name_ids[tag] = len(tag_names)
                    tag_names.append(tag)
                slow_idx.append(i)
                slow_tags.append(known)
                slow_steps.append(step)
                slow_walls.append(wall)
                slow_values.append(value)
        plugins = run.plugins
        fast = np.flatnonzero(ok)
        if fast.size:
            wall_lo = min(wall_lo, float(rec_walls[fast].min()))
            wall_hi = max(wall_hi, float(rec_walls[fast].max()))
        if len(prec):
            # A value without metadata of its own: trust what earlier events declared.
            foreign = [i for i, t in enumerate(tag_names) if plugins.get(t, "scalars") != "scalars"]
            if foreign:
                keep = ~np.isin(tag_ids, foreign)
                prec, tag_ids, steps, walls, values = (
                    prec[keep],
                    tag_ids[keep],
                    steps[keep],
                    walls[keep],
                    values[keep],
                )
        run.events += n - bad
        if np.isfinite(wall_lo):
            if run.first_wall_time is None or wall_lo < run.first_wall_time:
                run.first_wall_time = wall_lo
            if run.last_wall_time is None or wall_hi > run.last_wall_time:
                run.last_wall_time = wall_hi
        # Points in the order they were written (values of one event keep their order).
        rec = np.concatenate([prec, np.array(slow_idx, dtype=np.int64)])
        order = np.argsort(rec, kind="stable")
        rec = rec[order]
        tid = np.concatenate([tag_ids, np.array(slow_tags, dtype=np.int64)])[order]
        stp = np.concatenate([steps, np.array(slow_steps, dtype=np.int64)])[order]
        wal = np.concatenate([walls, np.array(slow_walls, dtype=np.float64)])[order]
        val = np.concatenate([values, np.array(slow_values, dtype=np.float64)])[order]
        lo = 0
        segments: list[tuple[int, int | None]] = [*starts_log, (n, None)]
        for index, restart in segments:
            hi = int(np.searchsorted(rec, index, side="left"))
            self._apply(run, tag_names, tid[lo:hi], stp[lo:hi], wal[lo:hi], val[lo:hi])
            lo = hi
            if restart is not None:
                # A restart from a checkpoint: what was logged at or after this step is orphaned.
                for series in run.series.values():
                    series.truncate(restart)
        return bad

    def _apply(
        self,
        run: RunState,
        names: list[str],
        tids: np.ndarray,
        steps: np.ndarray,
        walls: np.ndarray,
        values: np.ndarray,
    ) -> None:
        if not len(tids):
            return
        order = np.argsort(tids, kind="stable")
        tids, steps, walls, values = tids[order], steps[order], walls[order], values[order]
        bounds = [0, *(np.flatnonzero(np.diff(tids)) + 1).tolist(), len(tids)]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            tag = names[int(tids[a])]
            series = run.series.get(tag)
            if series is None:
                series = run.series[tag] = ScalarSeries(self.cap)
            series.extend(steps[a:b], walls[a:b], values[a:b])

    def _parse_one(
        self, run: RunState, data: bytes
    ) -> tuple[float, list[tuple[str, int, float]], int | None] | None:
        """One record through the protobuf parser: (wall time, scalar points, session start)."""
        from google.protobuf.message import DecodeError

        try:
            event = self._event_cls.FromString(data)
        except DecodeError:
            return None
        points: list[tuple[str, int, float]] = []
        kind = event.WhichOneof("what")
        if kind == "summary":
            plugins = run.plugins
            for value in event.summary.value:
                tag = value.tag
                if value.HasField("metadata"):
                    name = value.metadata.plugin_data.plugin_name
                    if name:
                        plugins[tag] = name
                if plugins.get(tag, "scalars") != "scalars":
                    continue
                which = value.WhichOneof("value")
                if which == "simple_value":
                    points.append((tag, event.step, value.simple_value))
                elif which == "tensor":
                    number = tensor_scalar(value.tensor)
                    if number is not None:
                        points.append((tag, event.step, number))
        elif kind == "session_log" and event.session_log.status == 1:  # START
            return event.wall_time, points, event.step
        return event.wall_time, points, None


# DataType enum values (tensorflow/core/framework/types.proto) -> struct code for tensor_content.
_DTYPES = {1: "f", 2: "d", 3: "i", 4: "B", 5: "h", 6: "b", 9: "q", 10: "?", 19: "e", 17: "H"}


def tensor_scalar(tensor: object) -> float | None:
    """The single number held by a TensorProto (``tensor_content`` or a typed ``*_val`` field).

    Returns None for strings, empty tensors and tensors of more than one element.
    """
    dtype = tensor.dtype  # type: ignore[attr-defined]
    code = _DTYPES.get(dtype)
    if code is None:
        return None
    content = tensor.tensor_content  # type: ignore[attr-defined]
    if content:
        if len(content) != struct.calcsize(code):
            return None
        return float(struct.unpack("<" + code, content)[0])
    if dtype == 1:
        vals = tensor.float_val  # type: ignore[attr-defined]
    elif dtype == 2:
        vals = tensor.double_val  # type: ignore[attr-defined]
    elif dtype == 9:
        vals = tensor.int64_val  # type: ignore[attr-defined]
    elif dtype == 19:
        # half_val holds the IEEE half bits in an int32.
        bits = tensor.half_val  # type: ignore[attr-defined]
        return float(struct.unpack("<e", struct.pack("<H", bits[0]))[0]) if len(bits) == 1 else None
    elif dtype == 10:
        vals = tensor.bool_val  # type: ignore[attr-defined]
    else:
        vals = tensor.int_val  # type: ignore[attr-defined]
    return float(vals[0]) if len(vals) == 1 else None


# ------------------------------------------------------------------------------ the log directory


def _file_sort_key(path: Path) -> tuple[int, str]:
    # TensorFlow names files events.out.tfevents.<unix time>.<host>...: a resumed run's new file
    # sorts after the old one, so reading in this order lets the newest session win.
    match = _FILE_TIME.search(path.name)
    return (int(match.group(1)) if match else 0, str(path))


class LogdirReader:
    """Follows every ``events.out.tfevents.*`` file of every run under a log directory.

    A run is a directory directly under ``logdir`` (its event files may sit in it or one level
    below, e.g. ``<run>/train``); event files directly in ``logdir`` form the run ``"."``.
    :meth:`poll` reads only the bytes written since the previous poll. All mutation happens
    under :attr:`lock`; readers on other threads take it while copying data out.

    Args:
        logdir: The log directory (it may not exist yet).
        cap: Points kept per tag before thinning (see :class:`ScalarSeries`).
        rescan_interval: Seconds between directory listings looking for new runs and files;
            known files are checked on every poll.
    """

    def __init__(
        self,
        logdir: str | os.PathLike[str],
        *,
        cap: int = DEFAULT_POINT_CAP,
        rescan_interval: float = 2.0,
    ) -> None:
        self.logdir = Path(logdir)
        self.runs: dict[str, RunState] = {}
        self.lock = threading.RLock()
        self.rescan_interval = rescan_interval
        self.read_chunk = READ_CHUNK
        self._parser = EventParser(cap)
        self._last_scan = -float("inf")
        self._listing_skips: dict[Path, str] = {}  # rebuilt by every listing
        self._file_skips: dict[Path, str] = {}  # until the file reads again or is gone

    @property
    def corrupt_records(self) -> int:
        """Corrupt records skipped so far, over all runs."""
        return sum(r.corrupt_records for r in self.runs.values())

    @property
    def unreadable(self) -> dict[Path, str]:
        """Entries skipped because they could not be followed, listed or read, and why.

        A symbolic-link loop, a folder without permission, an event file that fails to open:
        never fatal, they are left out and tried again (listings on every rescan, known files
        on every poll); an entry leaves this map once it reads again or is gone.
        """
        return {**self._listing_skips, **self._file_skips}

    def poll(self, *, rescan: bool | None = None) -> set[str]:
        """Read what was appended since the last poll.

        An event file replaced under the same name (another inode, a shorter size, or other
        first bytes) makes its run be read again from the start of every file; a file that
        cannot be read is skipped until the next poll (see :attr:`unreadable`), and one that
        is gone is forgotten (its points stay, as TensorBoard keeps them).

        Args:
            rescan: List directories for new runs and files now (default: when
                ``rescan_interval`` has passed since the last listing).

        Returns:
            Names of the runs whose data or status changed.
        """
        now = time.monotonic()
        if rescan is None:
            rescan = now - self._last_scan >= self.rescan_interval
        changed: set[str] = set()
        with self.lock:
            if rescan:
                self._last_scan = now
                changed |= self._scan()
            for run in self.runs.values():
                if self._read_run(run):
                    changed.add(run.name)
        return changed

    def _scan(self) -> set[str]:
        changed: set[str] = set()
        self._listing_skips = {}
        entries = self._list(self.logdir)
        own = [Path(e.path) for e in entries if e.name.startswith("events.out.tfevents.")]
        candidates: list[tuple[str, Path, list[Path]]] = []
        if own:
            candidates.append((".", self.logdir, own))
        for entry in entries:
            if not entry.name.startswith(".") and self._is_dir(entry):
                files = self._event_files(Path(entry.path))
                marker = _has_marker(Path(entry.path))
                if files or marker or entry.name in self.runs:
                    candidates.append((entry.name, Path(entry.path), files))
        for name, path, files in candidates:
            run = self.runs.get(name)
            if run is None:
                run = self.runs[name] = RunState(name=name, path=path)
                changed.add(name)
            for f in sorted(files, key=_file_sort_key):
                if f not in run.files:
                    run.files[f] = FileCursor(f)
                    changed.add(name)
            if name != ".":
                marker_state = _read_marker(path)
                if marker_state != (run.marker, run.marker_reason):
                    run.marker, run.marker_reason = marker_state
                    run.version += 1
                    changed.add(name)
        if changed:
            # Keep file order stable (oldest session first) after additions.
            for name in changed:
                run = self.runs[name]
                run.files = dict(sorted(run.files.items(), key=lambda kv: _file_sort_key(kv[0])))
        return changed

    def _list(self, directory: Path) -> list[os.DirEntry[str]]:
        """``directory``'s entries by name; none (and the reason noted) when it cannot be listed."""
        try:
            return sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return []  # not there (yet, or any more): nothing to say
        except OSError as exc:
            self._listing_skips[directory] = _reason(exc)
            return []

    def _is_dir(self, entry: os.DirEntry[str]) -> bool:
        """``entry.is_dir()``; one that cannot be followed (a link loop) is noted, not fatal."""
        try:
            return entry.is_dir()
        except OSError as exc:
            self._listing_skips[Path(entry.path)] = _reason(exc)
            return False

    def _event_files(self, run_dir: Path) -> list[Path]:
        """Event files directly in ``run_dir`` or one folder below it."""
        files: list[Path] = []
        for entry in self._list(run_dir):
            if entry.name.startswith("events.out.tfevents."):
                files.append(Path(entry.path))
            elif not entry.name.startswith(".") and self._is_dir(entry):
                files += [
                    Path(e.path)
                    for e in self._list(Path(entry.path))
                    if e.name.startswith("events.out.tfevents.")
                ]
        return files

    def _read_run(self, run: RunState) -> bool:
        changed = self._read_files(run)
        if changed is None:
            # A file was replaced or truncated: its old points cannot be told apart from the
            # other files' points, so the run is read again from the start of every file.
            self._reset_run(run)
            self._read_files(run)  # fresh cursors: no replacement to find
            changed = True
        if changed:
            run.version += 1
        return changed

    def _read_files(self, run: RunState) -> bool | None:
        """Read what is new in each of ``run``'s files: whether anything changed, or None as
        soon as one of them turns out to have been replaced."""
        changed = False
        gone: list[Path] = []
        for cursor in run.files.values():
            try:
                outcome = self._read_cursor(run, cursor)
            except FileNotFoundError:
                # Deleted since the listing (or between stat and open): forget it; a file
                # created again under its name is found by the next listing.
                gone.append(cursor.path)
                continue
            except OSError as exc:
                # Unreadable for now (permissions, an I/O error, a link loop): what was read
                # stays, and the file is tried again from its offset on the next poll.
                self._file_skips[cursor.path] = _reason(exc)
                continue
            if self._file_skips:
                self._file_skips.pop(cursor.path, None)
            if outcome is None:
                return None
            changed = outcome or changed
        for path in gone:
            del run.files[path]
            self._file_skips.pop(path, None)
        return changed

    def _read_cursor(self, run: RunState, cursor: FileCursor) -> bool | None:
        """Read what is new in one file: whether anything changed, None if it was replaced."""
        st = os.stat(cursor.path)
        identity = (st.st_dev, st.st_ino)
        if (
            st.st_size == cursor.size
            and st.st_mtime == cursor.mtime
            and identity == cursor.identity
        ):
            return False
        if cursor.identity is not None and (
            identity != cursor.identity or st.st_size < cursor.offset
        ):
            return None
        cursor.identity = identity
        cursor.mtime = st.st_mtime
        cursor.size = st.st_size
        run.last_write = max(run.last_write, st.st_mtime)
        if st.st_size <= cursor.offset:
            return True  # touched, or cut inside the record still being written
        try:
            return self._read_file(run, cursor)
        except OSError:
            cursor.mtime = -1.0  # not read to its size: the next poll must not skip it
            raise

    @staticmethod
    def _reset_run(run: RunState) -> None:
        """Forget everything read from ``run``'s files (its markers and file list stay)."""
        run.series = {}
        run.plugins = {}
        run.events = 0
        run.corrupt_records = 0
        run.first_wall_time = run.last_wall_time = None
        run.files = {path: FileCursor(path) for path in run.files}

    def _read_file(self, run: RunState, cursor: FileCursor) -> bool | None:
        """Read ``cursor``'s file from its offset to its known size, a bounded chunk at a time.

        Returns:
            Whether anything changed, or None when the bytes remembered from the file's start
            and from just before the offset are no longer there (rewritten in place: same
            inode, at least as long as before).
        """
        changed = False
        chunk = self.read_chunk
        with open(cursor.path, "rb") as fh:
            if cursor.offset:
                # Two small reads: a file truncated and rewritten in place starts with another
                # file_version event (its wall time), and its records end elsewhere (their CRCs).
                if fh.read(len(cursor.head)) != cursor.head:
                    return None
                fh.seek(cursor.offset - len(cursor.tail))
                if fh.read(len(cursor.tail)) != cursor.tail:
                    return None
            while cursor.offset < cursor.size:
                fh.seek(cursor.offset)
                buf = fh.read(min(chunk, cursor.size - cursor.offset))
                if not buf:
                    break
                scan = split_records(buf, resyncing=cursor.resyncing)
                if not cursor.offset:
                    cursor.head = buf[: min(_MARK_BYTES, scan.consumed)]
                if scan.consumed:
                    done = buf[max(0, scan.consumed - _MARK_BYTES) : scan.consumed]
                    cursor.tail = (cursor.tail + done)[-_MARK_BYTES:]
                cursor.offset += scan.consumed
                cursor.resyncing = scan.resyncing
                run.corrupt_records += scan.corrupt
                if len(scan.starts):
                    run.corrupt_records += self._parser.feed_scan(
                        run, buf, scan.starts, scan.lengths, scan.data
                    )
                changed = changed or bool(len(scan.starts)) or scan.corrupt > 0
                if cursor.offset + len(buf) - scan.consumed >= cursor.size:
                    break  # what is left is a record still being written
                if not scan.consumed:
                    chunk *= 2  # one record larger than the chunk
        return changed


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _has_marker(run_dir: Path) -> bool:
    return (run_dir / FINISHED_MARKER).exists() or (run_dir / FAILED_MARKER).exists()


def _read_marker(run_dir: Path) -> tuple[str | None, str]:
    for name, status in ((FAILED_MARKER, "failed"), (FINISHED_MARKER, "finished")):
        try:
            text = (run_dir / name).read_text(errors="replace")
        except OSError:
            continue
        lines = text.strip().splitlines()
        return status, lines[0][:200] if lines else ""
    return None, ""


# ---------------------------------------------------------------------------------- the writer


class EventWriter:
    """A TensorFlow-free event-file writer (tests, benchmarks, tools).

    Writes the same framing and protos as ``tf.summary``: a ``file_version`` event first, then
    one event per scalar, as a tensor summary (``tensor_content``, as TensorFlow 2 writes) or
    as a ``simple_value`` (the TensorFlow 1 form).

    Args:
        path: File to create (truncated) or, with ``append=True``, to extend.
        append: Extend an existing file instead of starting a new one.
    """

    def __init__(self, path: str | os.PathLike[str], *, append: bool = False) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event_pb2 = event_pb2
        self._summary_pb2 = summary_pb2
        self.path = Path(path)
        self._fh = open(self.path, "ab" if append else "wb")  # noqa: SIM115 - closed in close()
        self._tagged: set[str] = set()
        if not append:
            self.write_event(event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2"))

    def write_event(self, event: object) -> None:
        """Append one Event proto."""
        self._fh.write(frame_record(event.SerializeToString()))  # type: ignore[attr-defined]

    def add_scalar(
        self,
        tag: str,
        value: float,
        step: int,
        wall_time: float | None = None,
        *,
        as_tensor: bool = True,
    ) -> None:
        """Append one scalar event."""
        summary = self._summary_pb2.Summary()
        v = summary.value.add(tag=tag)
        if as_tensor:
            if tag not in self._tagged:
                v.metadata.plugin_data.plugin_name = "scalars"
                self._tagged.add(tag)
            v.tensor.dtype = 1  # DT_FLOAT
            v.tensor.tensor_content = struct.pack("<f", value)
        else:
            v.simple_value = value
        self.write_event(
            self._event_pb2.Event(
                wall_time=time.time() if wall_time is None else wall_time,
                step=step,
                summary=summary,
            )
        )

    def flush(self) -> None:
        """Push written events to the file."""
        self._fh.flush()

    def close(self) -> None:
        """Flush and close the file."""
        self._fh.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
