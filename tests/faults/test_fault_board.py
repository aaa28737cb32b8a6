"""The board's reader (``facenet_cli.events``) and ``facenet board --once`` over a log directory
that is deleted, truncated and rewritten under them: no exception, and the final state shown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from facenet_cli import events
from facenet_cli.events import EventWriter, LogdirReader
from facenet_cli.events import reader as reader_module
from tests.faults.fault_helpers import cli, env


def write_run(run_dir: Path, steps: range, value: float = 1.0, name: str = "a") -> Path:
    """An event file of loss values ``value + step / 1000`` at ``steps``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with EventWriter(run_dir) as w:
        for step in steps:
            w.add_scalar(events.LOSS, value + step / 1000, step)
    # One fixed name per run and ``name``: writing again replaces the file, as the churn wants.
    path = run_dir / f"events.out.tfevents.{1700000000 + len(name)}.host.{name}"
    os.replace(w.path, path)
    return path


def loss(reader: LogdirReader, run: str) -> list[tuple[int, float]]:
    series = reader.runs[run].series[events.LOSS]
    return [(int(s), round(float(v), 4)) for s, v in zip(series.steps, series.values, strict=True)]


def test_truncated_mid_record_then_regrown(tmp_path: Path) -> None:
    path = write_run(tmp_path / "r1", range(1, 51))
    reader = LogdirReader(tmp_path)
    reader.poll(rescan=True)
    assert loss(reader, "r1")[-1][0] == 50
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 3])  # cut inside a record
    reader.poll(rescan=True)
    steps = [s for s, _ in loss(reader, "r1")]
    assert steps == sorted(set(steps)) and steps[-1] < 50
    path.write_bytes(data)  # the writer "catches up"
    reader.poll(rescan=True)
    assert [s for s, _ in loss(reader, "r1")] == list(range(1, 51))


def test_run_deleted_and_recreated_with_other_values(tmp_path: Path) -> None:
    write_run(tmp_path / "r1", range(1, 31), value=1.0)
    reader = LogdirReader(tmp_path)
    reader.poll(rescan=True)
    shutil.rmtree(tmp_path / "r1")
    reader.poll(rescan=True)  # must not raise on the vanished files
    write_run(tmp_path / "r1", range(1, 11), value=5.0, name="b")
    reader.poll(rescan=True)
    assert loss(reader, "r1")[-1] == (10, 5.01)


def test_whole_logdir_deleted_and_recreated(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    write_run(logdir / "r1", range(1, 11))
    reader = LogdirReader(logdir)
    reader.poll(rescan=True)
    shutil.rmtree(logdir)
    reader.poll(rescan=True)
    write_run(logdir / "r2", range(1, 6), value=2.0)
    reader.poll(rescan=True)
    assert loss(reader, "r2")[-1] == (5, 2.005)


def test_file_rewritten_in_place_with_longer_content(tmp_path: Path) -> None:
    path = write_run(tmp_path / "r1", range(1, 21), value=1.0)
    reader = LogdirReader(tmp_path)
    reader.poll(rescan=True)
    time.sleep(0.05)  # a later mtime
    tmp = tmp_path / "new"
    write_run(tmp, range(1, 41), value=3.0)
    os.replace(next(tmp.iterdir()), path)  # same name, new inode, longer
    reader.poll(rescan=True)
    assert loss(reader, "r1") == [(s, round(3.0 + s / 1000, 4)) for s in range(1, 41)]


def test_file_deleted_between_stat_and_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_run(tmp_path / "r1", range(1, 11))
    reader = LogdirReader(tmp_path)
    reader.poll(rescan=True)
    with open(path, "ab") as fh:
        fh.write(b"\0" * 20)  # grown: the next poll opens it
    real_stat = os.stat

    def stat_then_delete(p, *a, **k):  # the race, made certain
        st = real_stat(p, *a, **k)
        if Path(p) == path:
            Path(p).unlink(missing_ok=True)
        return st

    monkeypatch.setattr(reader_module.os, "stat", stat_then_delete)
    reader.poll(rescan=False)
    assert loss(reader, "r1")[-1][0] == 10  # what was read stays


@pytest.mark.timeout(60)
def test_file_truncated_mid_record_between_stat_and_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size taken, then the file cut inside a record: the poll ends and keeps what it read."""
    path = write_run(tmp_path / "r1", range(1, 200))
    reader = LogdirReader(tmp_path)
    reader.read_chunk = 256
    real_stat = os.stat

    def stat_then_truncate(p, *a, **k):  # the race, made certain
        st = real_stat(p, *a, **k)
        if Path(p) == path and st.st_size > 1000:
            with open(path, "r+b") as fh:
                fh.truncate(st.st_size // 3 + 7)  # inside a record
        return st

    monkeypatch.setattr(reader_module.os, "stat", stat_then_truncate)
    reader.poll(rescan=True)
    steps = [s for s, _ in loss(reader, "r1")]
    assert steps and steps == list(range(1, len(steps) + 1)) and len(steps) < 199


def _churn(logdir: Path, stop: threading.Event, errors: list[BaseException]) -> None:
    """Delete, truncate and rewrite runs as fast as possible."""
    i = 0
    try:
        while not stop.is_set():
            i += 1
            run = logdir / f"r{i % 3}"
            path = write_run(run, range(1, 200), value=float(i % 7))
            if i % 3 == 0:
                shutil.rmtree(run, ignore_errors=True)
            elif i % 3 == 1:
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 3])
            else:
                (run / "FAILED").write_text("killed\n")
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        errors.append(exc)


def test_board_once_under_churn(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    write_run(logdir / "r0", range(1, 10))
    stop, errors = threading.Event(), []
    churn = threading.Thread(target=_churn, args=(logdir, stop, errors), daemon=True)
    churn.start()
    try:
        reader = LogdirReader(logdir, rescan_interval=0.0)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            reader.poll()
        for _ in range(3):
            done = subprocess.run(cli("board", logdir, "--once", "--json"), env=env(),
                                  capture_output=True, text=True, timeout=120)  # fmt: skip
            assert "Traceback" not in done.stderr, done.stderr[-2000:]
            assert done.returncode in (0, 5), done.stderr[-2000:]
            json.loads(done.stdout)
    finally:
        stop.set()
        churn.join(timeout=30)
    assert not errors, errors
