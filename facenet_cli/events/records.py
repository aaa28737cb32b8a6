"""TFRecord framing: the masked CRC-32C, one record's bytes, splitting a buffer into records.

Both CRCs of every record are checked (google-crc32c's C code); lengths are walked in Python
only where NumPy cannot chain them, so a large file splits in a few vectorised passes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np
from google_crc32c import value as _crc32c

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length bytes
_U32 = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_MASK_DELTA = 0xA282EAD8


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
    data: ByteView | None = None
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


class ByteView:
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


def _length_crcs(b: ByteView, heads: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of the 8-byte length field at each header offset."""
    tables, zero = _header_crc_tables()
    field = b.at("<u8", heads)
    crc = np.full(len(heads), zero, dtype=np.uint64)
    for j in range(8):
        crc ^= tables[j][(field >> np.uint64(8 * j)) & np.uint64(0xFF)]
    return _masked(crc)


def _u32_at(b: ByteView, offsets: np.ndarray) -> np.ndarray:
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
    b = ByteView(buf)
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


def _chain_records(b: ByteView, start: int, end: int) -> tuple[np.ndarray, int]:
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
