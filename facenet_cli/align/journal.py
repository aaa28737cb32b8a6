"""The alignment journal: one appended JSON line per finished input, the run's source of truth.

A record is appended only after the input's crops are in place (each written atomically), so a
run killed at any moment leaves a journal that lists exactly the inputs whose outputs are complete.
A torn last line (a kill in the middle of a write) is cut off when the journal is reopened.
At the end of a run the journal is compacted into the original's bounding-box file and a
failures file, sorted by input, so a resumed run writes the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facenet_cli.errors import InputError, StorageError


@dataclass(frozen=True)
class Record:
    """The outcome of one input.

    Attributes:
        rel: the input's path relative to the input root (``class/file.jpg``, POSIX separators).
        faces: ``(output name, x1, y1, x2, y2)`` per written crop.
        reason: why no crop was written (``None`` when ``faces`` is not empty).
        sig: the input's size and modification time when it was done.
    """

    rel: str
    faces: tuple[tuple[str, int, int, int, int], ...] = ()
    reason: str | None = None
    sig: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "in": self.rel,
                "out": [list(f) for f in self.faces],
                "err": self.reason,
                "sig": self.sig,
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Record:
        faces = tuple((str(f[0]), int(f[1]), int(f[2]), int(f[3]), int(f[4])) for f in obj["out"])
        return Record(str(obj["in"]), faces, obj["err"], str(obj.get("sig", "")))


class Journal:
    """Append-only record file with a settings header.

    Args:
        path: the journal file.
        settings: the options that change the output; a journal written with other settings
            is refused (mixing them in one output folder would give inconsistent crops).
    """

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path = path
        self.settings = settings
        self.records: dict[str, Record] = {}
        self._fd: int | None = None

    def open(self, wait: bool = False) -> Journal:
        """Lock the journal, read what is there (cutting a torn tail) and open for appending.

        Args:
            wait: when another run holds the lock, wait for it instead of failing.

        Raises:
            InputError: another run is writing this output folder (and ``wait`` is false), or
                the journal was written with other settings.
        """
        header = json.dumps({"settings": self.settings}, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot write the journal ({exc.strerror})") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise InputError(
                    f"{self.path}: another 'facenet align' run is writing this output folder "
                    "(use --shard I/N to split a dataset between runs)"
                ) from None
            good_end = self._read(fd)
            try:
                os.ftruncate(fd, good_end)
                os.lseek(fd, 0, os.SEEK_END)
                if good_end == 0:
                    os.write(fd, header.encode())
            except OSError as exc:
                raise StorageError(
                    f"{self.path}: cannot write the journal ({exc.strerror})"
                ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _read(self, fd: int) -> int:
        """Load the records; return the offset after the last complete line."""
        chunks = []
        os.lseek(fd, 0, os.SEEK_SET)
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        lines = b"".join(chunks).split(b"\n")
        offset = 0
        for n, raw in enumerate(lines[:-1]):  # the part after the last newline is torn
            try:
                obj = json.loads(raw)
            except ValueError:
                break
            if n == 0:
                if obj.get("settings") != self.settings:
                    raise InputError(
                        f"{self.path}: this output folder was aligned with other settings "
                        f"({_diff(obj.get('settings'), self.settings)}); use another folder"
                    )
            else:
                rec = Record.from_json(obj)
                self.records[rec.rel] = rec
            offset += len(raw) + 1
        return offset

    def append(self, records: Iterable[Record]) -> None:
        """Append records in one write (a kill leaves either all lines or a torn tail)."""
        records = list(records)
        if not records:
            return
        data = "".join(r.to_json() + "\n" for r in records).encode()
        assert self._fd is not None
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot write the journal ({exc.strerror})") from None
        for r in records:
            self.records[r.rel] = r

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Journal:
        return self if self._fd is not None else self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _diff(old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return "unknown"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys) or "unknown"


def write_text_atomic(path: Path, text: str) -> None:
    """Write a text file under a temporary name, fsync, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"{path}: cannot write ({exc.strerror})") from None


# Every shard's journal: the coordinator's JOURNAL_FILE with its shard suffix.
_JOURNAL_GLOB = ".align-journal*.jsonl"


def journal_alignment(data_dir: str | Path | None) -> dict[str, Any] | None:
    """The alignment settings in the journal of the (first) aligned data root, if any."""
    if data_dir is None:
        return None
    root = Path(str(data_dir).split(":")[0]).expanduser()
    for journal in sorted(root.glob(_JOURNAL_GLOB)):
        try:
            with journal.open() as f:
                settings = json.loads(f.readline()).get("settings")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(settings, dict) and {"image_size", "margin"} <= settings.keys():
            return settings
    return None
