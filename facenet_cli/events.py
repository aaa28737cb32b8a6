"""TensorFlow-free event-file knowledge shared by ``train`` (writer) and ``board`` (reader).

The scalar tag names live here, once. This module must never import TensorFlow or Keras:
the dashboard imports it.
"""

from __future__ import annotations

import bisect
import os
import re
import struct
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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

DEFAULT_POINT_CAP = 1_000_000
"""Points kept per tag before the reader starts thinning that tag (and says so)."""

_HEADER = struct.Struct("<QI")  # record length, masked CRC of the length bytes
_U32 = struct.Struct("<I")
_MASK_DELTA = 0xA282EAD8
_FILE_TIME = re.compile(r"tfevents\.(\d+)")


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

    records: list[bytes]
    consumed: int
    """Bytes that are done with; a partial last record starts here."""
    corrupt: int
    """Corrupt regions skipped (a bad data CRC, or garbage until the next valid header)."""
    resyncing: bool
    """The buffer ended inside garbage: the next scan continues the same corrupt region."""


def split_records(buf: bytes, *, resyncing: bool = False) -> RecordScan:
    """Split ``buf`` into complete TFRecords, checking both CRCs of each.

    Args:
        buf: Bytes read from a record file, starting at a record boundary (or inside garbage
            when ``resyncing``).
        resyncing: The previous scan ended inside a corrupt region; do not count it again.

    Returns:
        The complete records, how many bytes were consumed, and the corrupt count. A record
        whose header or data is not fully in ``buf`` is left for later.
    """
    records: list[bytes] = []
    corrupt = 0
    pos = 0
    end = len(buf)
    unpack_header = _HEADER.unpack_from
    unpack_u32 = _U32.unpack_from
    crc = masked_crc32c
    while end - pos >= 12:
        length, length_crc = unpack_header(buf, pos)
        if crc(buf[pos : pos + 8]) != length_crc:
            # The length cannot be trusted: look for the next offset where a header checks out.
            if not resyncing:
                corrupt += 1
                resyncing = True
            nxt = _find_header(buf, pos + 1)
            if nxt < 0:
                return RecordScan(records, max(pos, end - 11), corrupt, True)
            pos = nxt
            continue
        resyncing = False
        stop = pos + 12 + length
        if stop + 4 > end:
            break  # partly written: wait for the rest
        data = buf[pos + 12 : stop]
        if crc(data) == unpack_u32(buf, stop)[0]:
            records.append(data)
        else:
            corrupt += 1
        pos = stop + 4
    return RecordScan(records, pos, corrupt, resyncing)


def _find_header(buf: bytes, start: int) -> int:
    """First offset >= ``start`` holding a header whose CRC matches, or -1."""
    unpack_header = _HEADER.unpack_from
    for i in range(start, len(buf) - 11):
        length, length_crc = unpack_header(buf, i)
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
        self._skip = 0
        self.latest: tuple[int, float, float] | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, step: int, wall_time: float, value: float) -> None:
        """Append a point; a step at or before the last one drops the points it replaces."""
        steps = self.steps
        if steps and step <= steps[-1]:
            self.truncate(step)
        self.latest = (step, wall_time, value)
        if self.thinned > 1:
            self._skip += 1
            if self._skip < self.thinned:
                return
            self._skip = 0
        steps.append(step)
        self.wall_times.append(wall_time)
        self.values.append(value)
        if len(steps) >= self.cap:
            self.steps = steps[::2]
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


class EventParser:
    """Turns event records into scalar points of a :class:`RunState`."""

    def __init__(self, cap: int = DEFAULT_POINT_CAP) -> None:
        # Importing the protos here keeps ``import facenet_cli.events`` (tag names only) cheap.
        from tensorboard.compat.proto import event_pb2

        self._event_cls = event_pb2.Event
        self.cap = cap

    def feed(self, run: RunState, records: list[bytes]) -> int:
        """Parse ``records`` into ``run``; returns how many could not be parsed."""
        from google.protobuf.message import DecodeError

        bad = 0
        from_string = self._event_cls.FromString
        series = run.series
        plugins = run.plugins
        cap = self.cap
        for data in records:
            try:
                event = from_string(data)
            except DecodeError:
                bad += 1
                continue
            run.events += 1
            wall = event.wall_time
            if run.first_wall_time is None or wall < run.first_wall_time:
                run.first_wall_time = wall
            if run.last_wall_time is None or wall > run.last_wall_time:
                run.last_wall_time = wall
            kind = event.WhichOneof("what")
            if kind == "summary":
                step = event.step
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
                        number = value.simple_value
                    elif which == "tensor":
                        number = tensor_scalar(value.tensor)
                        if number is None:
                            continue
                    else:
                        continue
                    s = series.get(tag)
                    if s is None:
                        s = series[tag] = ScalarSeries(cap)
                    s.add(step, wall, number)
            elif kind == "session_log" and event.session_log.status == 1:  # START
                # A restart from a checkpoint: what was logged at or after this step is orphaned.
                for s in series.values():
                    s.truncate(event.step)
        return bad


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
        self._parser = EventParser(cap)
        self._last_scan = -float("inf")

    @property
    def corrupt_records(self) -> int:
        """Corrupt records skipped so far, over all runs."""
        return sum(r.corrupt_records for r in self.runs.values())

    def poll(self, *, rescan: bool | None = None) -> set[str]:
        """Read what was appended since the last poll.

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
        try:
            entries = sorted(os.scandir(self.logdir), key=lambda e: e.name)
        except (FileNotFoundError, NotADirectoryError):
            return changed
        own = [Path(e.path) for e in entries if e.name.startswith("events.out.tfevents.")]
        candidates: list[tuple[str, Path, list[Path]]] = []
        if own:
            candidates.append((".", self.logdir, own))
        for entry in entries:
            if entry.is_dir() and not entry.name.startswith("."):
                files = _event_files(Path(entry.path))
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

    def _read_run(self, run: RunState) -> bool:
        changed = False
        for cursor in run.files.values():
            try:
                st = os.stat(cursor.path)
            except FileNotFoundError:
                continue
            if st.st_size == cursor.offset and st.st_mtime == cursor.mtime:
                continue
            cursor.mtime = st.st_mtime
            run.last_write = max(run.last_write, st.st_mtime)
            if st.st_size < cursor.offset:
                # Replaced or truncated: read it again; step rewinds drop the stale points.
                cursor.offset = 0
                cursor.resyncing = False
            if st.st_size == cursor.offset:
                changed = True
                continue
            with open(cursor.path, "rb") as fh:
                fh.seek(cursor.offset)
                buf = fh.read(st.st_size - cursor.offset)
            scan = split_records(buf, resyncing=cursor.resyncing)
            cursor.offset += scan.consumed
            cursor.size = st.st_size
            cursor.resyncing = scan.resyncing
            run.corrupt_records += scan.corrupt
            if scan.records:
                run.corrupt_records += self._parser.feed(run, scan.records)
            changed = changed or bool(scan.records) or scan.corrupt > 0
        if changed:
            run.version += 1
        return changed


def _event_files(run_dir: Path) -> list[Path]:
    files: list[Path] = []
    try:
        for entry in os.scandir(run_dir):
            if entry.name.startswith("events.out.tfevents."):
                files.append(Path(entry.path))
            elif entry.is_dir() and not entry.name.startswith("."):
                try:
                    files += [
                        Path(e.path)
                        for e in os.scandir(entry.path)
                        if e.name.startswith("events.out.tfevents.")
                    ]
                except OSError:
                    continue
    except OSError:
        return []
    return files


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
