"""The TensorFlow-free event reader: framing, CRCs, partial and corrupt records, new files and
runs, resumed runs, markers, thinning."""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from board_eventlog import EventLog, event_file, scalar_event, tf2_records
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc

from facenet_cli import events as ev
from facenet_cli.events import reader as reader_module
from facenet_cli.events.decode import decode_scalar_events
from facenet_cli.events.records import ByteView


def _values(reader: ev.LogdirReader, run: str, tag: str) -> list[tuple[int, float]]:
    s = reader.runs[run].series[tag]
    return list(zip(s.steps.tolist(), s.values.tolist(), strict=True))


def _poll(reader: ev.LogdirReader) -> set[str]:
    return reader.poll(rescan=True)


# ------------------------------------------------------------------------------------ framing


@pytest.mark.parametrize("data", [b"", b"x", b"hello world" * 7, bytes(range(256)) * 3])
def test_masked_crc_matches_tensorboard(data: bytes) -> None:
    assert ev.masked_crc32c(data) == tb_masked_crc(data)


def test_frame_and_split_round_trip() -> None:
    payloads = [b"a", b"", b"bcd" * 50, bytes(300)]
    buf = b"".join(ev.frame_record(p) for p in payloads)
    scan = ev.split_records(buf)
    assert scan.records == payloads
    assert scan.consumed == len(buf) and scan.corrupt == 0 and not scan.resyncing


def test_split_leaves_partial_record_for_later() -> None:
    full = ev.frame_record(b"first") + ev.frame_record(b"second record")
    for cut in range(len(ev.frame_record(b"first")), len(full)):
        scan = ev.split_records(full[:cut])
        assert scan.records == [b"first"]
        assert scan.consumed == len(ev.frame_record(b"first"))
        assert scan.corrupt == 0


def test_split_skips_bad_data_crc_and_counts_it() -> None:
    good = [ev.frame_record(b"one"), ev.frame_record(b"two"), ev.frame_record(b"three")]
    bad = bytearray(good[1])
    bad[13] ^= 0xFF  # a data byte
    scan = ev.split_records(good[0] + bytes(bad) + good[2])
    assert scan.records == [b"one", b"three"]
    assert scan.corrupt == 1


def test_split_resyncs_after_garbage_and_counts_it_once() -> None:
    first, last = ev.frame_record(b"before"), ev.frame_record(b"after")
    garbage = bytes(range(7, 250))
    scan = ev.split_records(first + garbage + last)
    assert scan.records == [b"before", b"after"]
    assert scan.corrupt == 1
    # Garbage at the end: counted once, and still once when the next scan continues inside it.
    scan = ev.split_records(first + garbage)
    assert scan.records == [b"before"] and scan.corrupt == 1 and scan.resyncing
    again = ev.split_records((first + garbage)[scan.consumed :] + last, resyncing=True)
    assert again.records == [b"after"] and again.corrupt == 0 and not again.resyncing


# ------------------------------------------------------------------------------------ decoding


def test_reads_records_written_by_tensorflow(tmp_path: Path) -> None:
    path = event_file(tmp_path / "run")
    path.parent.mkdir()
    path.write_bytes(b"".join(ev.frame_record(r) for r in tf2_records()))
    reader = ev.LogdirReader(tmp_path)
    assert _poll(reader) == {"run"}
    assert _values(reader, "run", "loss") == [(0, 0.5), (1, 1.5)]
    assert _values(reader, "run", "lr") == [(0, pytest.approx(0.1))]
    assert reader.runs["run"].plugins == {"loss": "scalars", "lr": "scalars"}


@pytest.mark.parametrize("form", ["tf2", "float_val", "double", "simple"])
def test_scalar_forms(tmp_path: Path, form: str) -> None:
    log = EventLog(event_file(tmp_path / "r"))
    for step in range(5):
        log.scalar("loss", 0.25 * step, step, form=form)
    log.scalar("big/step", 3.0, 2**40, form=form)  # a long step varint
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert _values(reader, "r", "loss") == [(s, 0.25 * s) for s in range(5)]
    assert _values(reader, "r", "big/step") == [(2**40, 3.0)]
    assert reader.runs["r"].corrupt_records == 0


def test_vectorised_decode_agrees_with_protobuf(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    events = []
    for i in range(400):
        form = ["tf2", "float_val", "double", "simple"][i % 4]
        tag = ["loss", "a/b", "x" * 40, "ünï"][int(rng.integers(4))]
        events.append(
            scalar_event(tag, float(rng.normal()), int(rng.integers(0, 10**6)), 1e9 + i, form)
        )
    # Events the fast path must hand over: two values in one summary, an int64 tensor.
    two = summary_pb2.Summary(
        value=[
            summary_pb2.Summary.Value(tag="p", simple_value=1.0),
            summary_pb2.Summary.Value(tag="q", simple_value=2.0),
        ]
    )
    events.append(event_pb2.Event(wall_time=2e9, step=7, summary=two))
    iv = summary_pb2.Summary.Value(tag="count")
    iv.tensor.dtype = 9
    iv.tensor.int64_val.append(42)
    events.append(event_pb2.Event(wall_time=2e9, step=8, summary=summary_pb2.Summary(value=[iv])))
    # A whole step's scalars in one event (the training loop's layout), and one such event with
    # an int64 tensor among them (the whole record then goes through protobuf).
    for i in range(50):
        values = [
            summary_pb2.Summary.Value(tag=f"t{k}", simple_value=float(i * k)) for k in range(7)
        ]
        events.append(
            event_pb2.Event(
                wall_time=3e9 + i, step=100 + i, summary=summary_pb2.Summary(value=values)
            )
        )
    mixed = [
        summary_pb2.Summary.Value(tag="t0", simple_value=-1.0),
        iv,
        summary_pb2.Summary.Value(tag="t1", simple_value=-2.0),
    ]
    events.append(
        event_pb2.Event(wall_time=4e9, step=500, summary=summary_pb2.Summary(value=mixed))
    )
    records = [e.SerializeToString() for e in events]
    fast = ev.RunState("fast", tmp_path)
    ev.EventParser().feed(fast, records)
    # Reference: every record through the protobuf parser, applied point by point.
    ref = ev.RunState("ref", tmp_path)
    parser = ev.EventParser()
    for rec in records:
        _, points, _ = parser._parse_one(ref, rec)  # noqa: SLF001 - the reference path
        for tag, step, value in points:
            ref.series.setdefault(tag, ev.ScalarSeries()).add(step, 0.0, value)
    assert sorted(fast.series) == sorted(ref.series)
    for tag, series in ref.series.items():
        assert fast.series[tag].steps.tolist() == series.steps.tolist(), tag
        np.testing.assert_array_equal(fast.series[tag].values, series.values)
    assert fast.series["count"].latest[2] == 42.0
    assert fast.series["t6"].latest == (149, 3e9 + 49, 6.0 * 49)
    assert fast.series["t1"].latest[:1] == (500,) and fast.series["t1"].latest[2] == -2.0
    assert fast.events == len(records)
    # Nearly every record took the vectorised path.
    b = ByteView(b"".join(records))
    lengths = np.array([len(r) for r in records])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ok = decode_scalar_events(b, starts, lengths)[0]
    assert ok.sum() == len(records) - 2  # all but the int64 event and the mixed one


def test_non_scalar_plugins_are_ignored(tmp_path: Path) -> None:
    log = EventLog(event_file(tmp_path / "r"))
    hist = summary_pb2.Summary.Value(tag="weights")
    hist.metadata.plugin_data.plugin_name = "histograms"
    hist.tensor.dtype = 1
    hist.tensor.tensor_content = struct.pack("<f", 1.0)
    log.event(event_pb2.Event(wall_time=1e9, step=1, summary=summary_pb2.Summary(value=[hist])))
    later = summary_pb2.Summary.Value(tag="weights")  # later events carry no metadata
    later.tensor.dtype = 1
    later.tensor.tensor_content = struct.pack("<f", 2.0)
    log.event(event_pb2.Event(wall_time=1e9, step=2, summary=summary_pb2.Summary(value=[later])))
    text = summary_pb2.Summary.Value(tag="note")
    text.tensor.dtype = 7
    text.tensor.string_val.append(b"hello")
    log.event(event_pb2.Event(wall_time=1e9, step=1, summary=summary_pb2.Summary(value=[text])))
    log.scalar("loss", 1.0, 1)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert set(reader.runs["r"].series) == {"loss"}


# ------------------------------------------------------------------------- following a logdir


def test_partial_last_record_waits_for_the_next_poll(tmp_path: Path) -> None:
    path = event_file(tmp_path / "r")
    log = EventLog(path)
    for step in range(3):
        log.scalar("loss", float(step), step)
    whole = path.read_bytes()
    tail_start = len(whole) - len(
        ev.frame_record(scalar_event("loss", 2.0, 2, 1e9 + 2).SerializeToString())
    )
    path.write_bytes(whole[: tail_start + 5])  # the last record cut inside its header
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert _values(reader, "r", "loss") == [(0, 0.0), (1, 1.0)]
    with open(path, "ab") as fh:
        fh.write(whole[tail_start + 5 : -3])  # now cut inside the data
    assert reader.poll() == set() or _values(reader, "r", "loss") == [(0, 0.0), (1, 1.0)]
    with open(path, "ab") as fh:
        fh.write(whole[-3:])
    reader.poll()
    assert _values(reader, "r", "loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert reader.runs["r"].corrupt_records == 0


def test_corrupt_records_are_counted_and_skipped(tmp_path: Path) -> None:
    path = event_file(tmp_path / "r")
    log = EventLog(path)
    log.scalar("loss", 0.0, 0)
    log.raw(b"\x08\x01not an event\xff\xff")  # valid framing, not a valid Event
    log.close()
    with open(path, "ab") as fh:
        fh.write(b"\x17" * 40)  # garbage: no valid header
    log = EventLog(path, version_event=False)
    log.scalar("loss", 1.0, 1)
    record = bytearray(ev.frame_record(scalar_event("loss", 2.0, 2, 1e9).SerializeToString()))
    record[-1] ^= 0x55  # bad data CRC
    with open(path, "ab") as fh:
        fh.write(bytes(record))
    log.scalar("loss", 3.0, 3)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert _values(reader, "r", "loss") == [(0, 0.0), (1, 1.0), (3, 3.0)]
    assert reader.runs["r"].corrupt_records == 3
    assert reader.corrupt_records == 3


def test_new_files_and_new_runs_are_picked_up(tmp_path: Path) -> None:
    reader = ev.LogdirReader(tmp_path / "logs")  # does not exist yet
    assert _poll(reader) == set()
    EventLog(event_file(tmp_path / "logs" / "a")).scalar("loss", 1.0, 0)
    assert _poll(reader) == {"a"}
    EventLog(event_file(tmp_path / "logs" / "b" / "train")).scalar("loss", 2.0, 0)
    EventLog(event_file(tmp_path / "logs" / "a", stamp=1_000_000_100)).scalar("lr", 0.1, 5)
    assert _poll(reader) == {"a", "b"}
    assert set(reader.runs["a"].series) == {"loss", "lr"}
    assert _values(reader, "b", "train/loss") == [(0, 2.0)]  # the folder below the run: a prefix
    # Appends to known files are seen without a directory listing.
    EventLog(event_file(tmp_path / "logs" / "a"), version_event=False).scalar("loss", 0.5, 1)
    assert reader.poll(rescan=False) == {"a"}
    assert _poll(reader) == set()


def test_event_files_in_the_logdir_itself_form_run_dot(tmp_path: Path) -> None:
    EventLog(event_file(tmp_path)).scalar("loss", 1.0, 0)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert list(reader.runs) == ["."]


def test_resumed_run_keeps_the_newest_session(tmp_path: Path) -> None:
    run = tmp_path / "r"
    old = EventLog(event_file(run, stamp=1_000_000_000))
    for step in range(10):
        old.scalar("loss", 1.0, step)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    # Resumed from a checkpoint at step 5: a new file rewrites steps 6.. with new values.
    new = EventLog(event_file(run, stamp=1_000_000_500))
    for step in range(6, 8):
        new.scalar("loss", 2.0, step)
    _poll(reader)
    assert _values(reader, "r", "loss") == [(s, 1.0) for s in range(6)] + [(6, 2.0), (7, 2.0)]
    assert reader.runs["r"].series["loss"].latest[:1] == (7,)
    assert reader.runs["r"].last_step == 7
    # A fresh reader over both files agrees (old file first by its timestamp).
    fresh = ev.LogdirReader(tmp_path)
    _poll(fresh)
    assert _values(fresh, "r", "loss") == _values(reader, "r", "loss")


def test_rewind_within_one_file_and_session_start(tmp_path: Path) -> None:
    log = EventLog(event_file(tmp_path / "r"))
    for i, step in enumerate((0, 1, 2, 3, 1, 2)):
        log.scalar("loss", 10.0 * i, step)
    log.scalar("lr", 0.1, 3)
    log.event(
        event_pb2.Event(
            wall_time=1e9,
            step=2,
            session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
        )
    )
    log.scalar("loss", 99.0, 2)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert _values(reader, "r", "loss") == [(0, 0.0), (1, 40.0), (2, 99.0)]
    assert "lr" not in reader.runs["r"].latest_values()  # purged by the session start


def test_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = event_file(tmp_path / "r")
    log = EventLog(path)
    for step in range(5):
        log.scalar("loss", 1.0, step)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    path.unlink()
    log = EventLog(path)
    log.scalar("loss", 3.0, 0)
    reader.poll()
    assert _values(reader, "r", "loss") == [(0, 3.0)]


def test_markers_give_the_run_state(tmp_path: Path) -> None:
    EventLog(event_file(tmp_path / "done")).scalar("loss", 1.0, 0)
    EventLog(event_file(tmp_path / "bad")).scalar("loss", math.nan, 0)
    (tmp_path / "done" / ev.FINISHED_MARKER).write_text("")
    (tmp_path / "bad" / ev.FAILED_MARKER).write_text("loss became NaN at step 0\nmore\n")
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    assert reader.runs["done"].marker == "finished"
    assert (reader.runs["bad"].marker, reader.runs["bad"].marker_reason) == (
        "failed",
        "loss became NaN at step 0",
    )
    assert math.isnan(reader.runs["bad"].latest_values()["loss"])
    # A run folder given as the log directory is the run ".", with its own marker.
    alone = ev.LogdirReader(tmp_path / "done")
    _poll(alone)
    assert alone.runs["."].marker == "finished"


def test_thinning_past_the_cap_is_even_and_keeps_latest(tmp_path: Path) -> None:
    series = ev.ScalarSeries(cap=100)
    steps = np.arange(1000)
    for chunk in np.array_split(steps, 7):
        series.extend(chunk, chunk.astype(float), chunk.astype(float) * 2)
    assert len(series) < 100 and series.thinned >= 8
    gaps = np.diff(np.frombuffer(series.steps, dtype=np.int64))
    assert gaps.min() == gaps.max() == series.thinned  # evenly spaced, nothing silently lost
    assert series.latest == (999, 999.0, 1998.0)


def test_file_mtime_and_wall_times_are_tracked(tmp_path: Path) -> None:
    path = event_file(tmp_path / "r")
    log = EventLog(path)
    log.scalar("loss", 1.0, 0, wall_time=1.5e9)
    log.scalar("loss", 1.0, 1, wall_time=1.6e9)
    os.utime(path, (1.7e9, 1.7e9))
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    run = reader.runs["r"]
    assert (run.last_wall_time, run.last_write) == (1.6e9, 1.7e9)
    assert run.first_wall_time == 1.0e9  # the file_version event


def test_large_files_are_read_in_chunks(tmp_path: Path) -> None:
    log = EventLog(event_file(tmp_path / "r"))
    for step in range(300):
        log.scalar("loss", float(step), step)
    big = summary_pb2.Summary.Value(tag="blob", simple_value=1.0)
    big.metadata.summary_description = "x" * 5000  # one record larger than the chunk
    log.event(event_pb2.Event(wall_time=1e9, step=300, summary=summary_pb2.Summary(value=[big])))
    log.scalar("loss", 7.0, 301)
    reader = ev.LogdirReader(tmp_path)
    reader.read_chunk = 1000
    _poll(reader)
    assert len(reader.runs["r"].series["loss"]) == 301
    assert reader.runs["r"].series["blob"].latest[0] == 300
    assert reader.runs["r"].corrupt_records == 0


# ------------------------------------------------------------- replaced, vanishing, unreadable


def _loss_file(run_dir: Path, steps: range, value: float, tag: str = "loss", **kw) -> Path:
    path = event_file(run_dir, **kw)
    log = EventLog(path)
    for step in steps:
        log.scalar(tag, value, step)
    log.close()
    return path


def test_file_replaced_by_a_longer_one_drops_its_old_points(tmp_path: Path) -> None:
    path = _loss_file(tmp_path / "r", range(5), 1.0, tag="old_tag")
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    other = _loss_file(tmp_path / "elsewhere", range(20), 3.0)
    os.replace(other, path)  # same name, another inode, longer
    assert reader.poll(rescan=False) == {"r"}
    assert _values(reader, "r", "loss") == [(s, 3.0) for s in range(20)]
    assert "old_tag" not in reader.runs["r"].series  # not hidden behind a step rewind


def test_file_rewritten_in_place_and_longer_is_read_again(tmp_path: Path) -> None:
    path = _loss_file(tmp_path / "r", range(5), 1.0)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    inode = path.stat().st_ino
    path.write_bytes(b"")  # truncated and rewritten through the same inode
    _loss_file(tmp_path / "r", range(30), 2.0)
    assert path.stat().st_ino == inode
    reader.poll(rescan=False)
    assert _values(reader, "r", "loss") == [(s, 2.0) for s in range(30)]


def test_replacing_the_older_of_two_files_matches_a_fresh_reader(tmp_path: Path) -> None:
    run = tmp_path / "r"
    old = _loss_file(run, range(10), 1.0, stamp=1_000_000_000)
    _loss_file(run, range(6, 12), 2.0, stamp=1_000_000_500)  # resumed at step 6
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    other = _loss_file(tmp_path / "elsewhere", range(8), 5.0)
    os.replace(other, old)
    reader.poll(rescan=False)
    fresh = ev.LogdirReader(tmp_path)
    _poll(fresh)
    assert _values(reader, "r", "loss") == _values(fresh, "r", "loss")
    assert _values(reader, "r", "loss") == [(s, 5.0) for s in range(6)] + [
        (s, 2.0) for s in range(6, 12)
    ]
    assert reader.runs["r"].events == fresh.runs["r"].events


def test_appends_are_not_mistaken_for_a_rewrite(tmp_path: Path) -> None:
    path = event_file(tmp_path / "r")
    log = EventLog(path)
    reader = ev.LogdirReader(tmp_path)
    for step in range(40):
        log.scalar("loss", float(step), step)
        if step % 7 == 0:
            reader.poll(rescan=True)
    reader.poll()
    run = reader.runs["r"]
    assert _values(reader, "r", "loss") == [(s, float(s)) for s in range(40)]
    assert run.events == 41  # read once each: no re-read from the start


def test_file_deleted_between_stat_and_open_is_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loss_file(tmp_path / "r", range(5), 1.0)
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    EventLog(path, version_event=False).scalar("loss", 1.0, 5)  # grown: the next poll opens it
    real_stat = os.stat

    def stat_then_delete(p, *a, **k):  # the race, made certain
        st = real_stat(p, *a, **k)
        if Path(p) == path:
            Path(p).unlink()
        return st

    monkeypatch.setattr(reader_module.os, "stat", stat_then_delete)
    reader.poll(rescan=False)  # does not raise
    monkeypatch.undo()
    assert path not in reader.runs["r"].files and not reader.unreadable
    assert _values(reader, "r", "loss") == [(s, 1.0) for s in range(5)]  # what was read stays
    _loss_file(tmp_path / "r", range(3), 4.0)  # back under the same name
    _poll(reader)
    assert _values(reader, "r", "loss") == [(s, 4.0) for s in range(3)]


def test_an_unreadable_file_is_noted_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loss_file(tmp_path / "r", range(3), 1.0)
    _loss_file(tmp_path / "s", range(3), 2.0)

    def failing_open(p, *a, **k):
        if Path(p) == path:
            raise OSError(5, "Input/output error", str(p))
        return open(p, *a, **k)

    monkeypatch.setattr(reader_module, "open", failing_open, raising=False)
    reader = ev.LogdirReader(tmp_path)
    assert _poll(reader) == {"r", "s"}  # the other run is read
    assert _values(reader, "s", "loss") == [(s, 2.0) for s in range(3)]
    assert "loss" not in reader.runs["r"].series
    assert reader.unreadable == {path: "Input/output error"}
    monkeypatch.undo()
    reader.poll(rescan=False)  # the next poll reads it
    assert _values(reader, "r", "loss") == [(s, 1.0) for s in range(3)]
    assert reader.unreadable == {}


def test_symlink_loops_are_skipped_and_noted(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    _loss_file(logs / "r", range(3), 1.0)
    _loss_file(logs / "r" / "train", range(3, 6), 1.0)
    os.symlink("loop_b", logs / "loop_a")  # loop_a -> loop_b -> loop_a
    os.symlink("loop_a", logs / "loop_b")
    os.symlink("self", logs / "r" / "self")  # inside a run: the run must still be read
    os.symlink("..", logs / "r" / "parent")  # a folder loop one level down: not followed
    reader = ev.LogdirReader(logs)
    assert _poll(reader) == {"r"}
    assert _values(reader, "r", "loss") == [(s, 1.0) for s in range(3)]
    assert _values(reader, "r", "train/loss") == [(s, 1.0) for s in range(3, 6)]
    assert set(reader.runs["r"].series) == {"loss", "train/loss"}
    assert set(reader.unreadable) == {logs / "loop_a", logs / "loop_b", logs / "r" / "self"}
    assert all("symbolic links" in why for why in reader.unreadable.values())
    (logs / "loop_a").unlink()  # fixed: the listing forgets it (loop_b now dangles: not a dir)
    (logs / "r" / "self").unlink()
    _poll(reader)
    assert reader.unreadable == {}


def test_an_unchanged_file_is_not_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _loss_file(tmp_path / "r", range(3), 1.0)
    with open(path, "ab") as fh:
        fh.write(ev.frame_record(b"partial")[:-5])  # a record still being written
    reader = ev.LogdirReader(tmp_path)
    _poll(reader)
    opened: list[Path] = []

    def counting_open(p, *a, **k):
        opened.append(Path(p))
        return open(p, *a, **k)

    monkeypatch.setattr(reader_module, "open", counting_open, raising=False)
    assert reader.poll(rescan=False) == set()
    assert opened == []  # its pending tail is not read again while nothing changes
    EventLog(path, version_event=False).raw(b"grown")
    reader.poll(rescan=False)
    assert opened == [path]  # the same hook sees the read once the file grows
