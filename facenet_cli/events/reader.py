"""The log-directory reader: follows every event file of every run, from remembered offsets.

A file is read incrementally from a remembered byte offset: a partly written last record stays
unread until the next poll, a record whose CRC does not match is counted and skipped, and a
resumed run (steps going back) keeps the newest session's points, as TensorBoard does.
Run markers: ``train`` writes ``<logdir>/<run>/FINISHED`` or ``FAILED`` (first line: the
reason) when a run ends.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

from facenet_cli.events.decode import EventParser
from facenet_cli.events.records import split_records
from facenet_cli.events.runs import DEFAULT_POINT_CAP, MARK_BYTES, FileCursor, RunState

FINISHED_MARKER = "FINISHED"
"""File ``<logdir>/<run>/FINISHED`` written by ``train`` when a run ends normally."""
FAILED_MARKER = "FAILED"
"""File ``<logdir>/<run>/FAILED`` written by ``train`` when a run stops on an error; its first
line (optional) is the reason shown by the board."""

READ_CHUNK = 64 * 2**20
"""Bytes read from a file at a time (a large log is read in pieces, not all at once)."""
EVENT_FILE_PREFIX = "events.out.tfevents."
"""How every event file's name starts (TensorFlow, TensorBoard, tensorboardX, our writer)."""
EVENT_FILE_GLOB = EVENT_FILE_PREFIX + "*"
_FILE_TIME = re.compile(r"tfevents\.(\d+)")
SUBFOLDER_DEPTH = 3
"""How deep below a run's folder event files are looked for (Keras writes ``<run>/train`` and
``<run>/validation``, tensorboardX's ``add_scalars`` ``<run>/<tag>/<name>``)."""


def tag_prefix(run_dir: Path, event_file: Path) -> str:
    """The prefix of the tags of an event file in a folder below its run: ``train/`` for
    ``<run>/train/events...``, so Keras's training and validation ``epoch_loss`` stay apart (as
    TensorBoard keeps them apart as runs ``<run>/train`` and ``<run>/validation``)."""
    rel = event_file.parent.relative_to(run_dir).as_posix()
    return "" if rel == "." else rel + "/"


def _file_sort_key(path: Path) -> tuple[int, str]:
    # TensorFlow names files events.out.tfevents.<unix time>.<host>...: a resumed run's new file
    # sorts after the old one, so reading in this order lets the newest session win.
    match = _FILE_TIME.search(path.name)
    return (int(match.group(1)) if match else 0, str(path))


class LogdirReader:
    """Follows every ``events.out.tfevents.*`` file of every run under a log directory.

    A run is a directory directly under ``logdir``; its event files may sit in it or in folders
    below it (e.g. Keras's ``<run>/train``), whose tags then carry the folder as a prefix
    (``train/epoch_loss``, see :func:`tag_prefix`). Event files directly in ``logdir`` form
    the run ``"."``.
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
        own = [Path(e.path) for e in entries if e.name.startswith(EVENT_FILE_PREFIX)]
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
                    run.files[f] = FileCursor(f, prefix=tag_prefix(path, f))
                    changed.add(name)
            marker_state = _read_marker(path)  # "." too: ``board LOGS/RUN`` names one run
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

    def _event_files(self, run_dir: Path, depth: int = SUBFOLDER_DEPTH) -> list[Path]:
        """Event files in ``run_dir`` and in its folders down to ``depth`` levels below."""
        files: list[Path] = []
        for entry in self._list(run_dir):
            if entry.name.startswith(EVENT_FILE_PREFIX):
                files.append(Path(entry.path))
            elif depth > 0 and not entry.name.startswith(".") and self._is_dir(entry):
                if not entry.is_symlink():  # a linked folder may lead back up: not followed
                    files += self._event_files(Path(entry.path), depth - 1)
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
        run.files = {path: FileCursor(path, prefix=c.prefix) for path, c in run.files.items()}

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
                want = min(chunk, cursor.size - cursor.offset)
                buf = fh.read(want)
                if not buf:
                    break
                scan = split_records(buf, resyncing=cursor.resyncing)
                if not cursor.offset:
                    cursor.head = buf[: min(MARK_BYTES, scan.consumed)]
                if scan.consumed:
                    done = buf[max(0, scan.consumed - MARK_BYTES) : scan.consumed]
                    cursor.tail = (cursor.tail + done)[-MARK_BYTES:]
                cursor.offset += scan.consumed
                cursor.resyncing = scan.resyncing
                run.corrupt_records += scan.corrupt
                if len(scan.starts):
                    run.corrupt_records += self._parser.feed_scan(
                        run, buf, scan.starts, scan.lengths, scan.data, prefix=cursor.prefix
                    )
                changed = changed or bool(len(scan.starts)) or scan.corrupt > 0
                if cursor.offset + len(buf) - scan.consumed >= cursor.size:
                    break  # what is left is a record still being written
                if len(buf) < want:
                    break  # the file shrank since its size was taken: the next poll looks again
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
