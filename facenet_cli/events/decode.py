"""Event records to scalar points: vectorised for the common layouts, protobuf for the rest.

The scalar events TensorFlow 2 (tf.summary), TensorFlow 1 (simple_value), tensorboardX and the
project's writer produce have one fixed layout apart from the varints, the tag and the value.
Those are decoded for all records at once with NumPy; any record that differs goes through
TensorBoard's protobuf classes, one at a time.
"""

from __future__ import annotations

import struct

import numpy as np

from facenet_cli.events.records import ByteView
from facenet_cli.events.runs import DEFAULT_POINT_CAP, RunState, ScalarSeries

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
    b: ByteView, pos: np.ndarray, key: int
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


def decode_scalar_events(
    b: ByteView, starts: np.ndarray, lengths: np.ndarray
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


def _tag_ids(b: ByteView, tag_start: np.ndarray, tag_len: np.ndarray) -> tuple[np.ndarray, list]:
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
        data: ByteView | None = None,
        *,
        prefix: str = "",
    ) -> int:
        """Parse the records at ``starts``/``lengths`` of ``buf`` into ``run``.

        ``prefix`` goes before every tag (the file's folder below the run's, e.g. ``train/``).

        Returns:
            How many records were not valid Event protos (counted as corrupt).
        """
        n = len(starts)
        if n == 0:
            return 0
        b = ByteView(buf) if data is None else data
        ok, rec_walls, prec, tag_start, tag_len, steps, walls, values, declared = (
            decode_scalar_events(b, starts, lengths)
        )
        tag_ids = np.empty(0, dtype=np.int64)
        tag_names: list[str] = []
        if len(prec):
            tag_ids, tag_names = _tag_ids(b, tag_start, tag_len)
            if prefix:
                tag_names = [prefix + t for t in tag_names]
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
            parsed = self._parse_one(run, buf[s : s + int(lengths[i])], prefix)
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
        self, run: RunState, data: bytes, prefix: str = ""
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
                tag = prefix + value.tag
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
