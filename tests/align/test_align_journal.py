"""The journal: torn tails from a kill are cut, other settings are refused, one writer at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from facenet_cli.align.journal import Journal, Record
from facenet_cli.errors import InputError

SETTINGS = {"image_size": 160, "margin": 32}


def test_records_survive_reopening_and_a_torn_tail_is_cut(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal(path, SETTINGS) as j:
        j.append([Record("a/1.jpg", (("1.png", 1, 2, 3, 4),)), Record("a/2.jpg", reason="no face")])
    with open(path, "ab") as fh:
        fh.write(b'{"in":"a/3.jpg","out":[],"er')  # a kill in the middle of a write
    with Journal(path, SETTINGS) as j:
        assert set(j.records) == {"a/1.jpg", "a/2.jpg"}
        assert j.records["a/1.jpg"].faces == (("1.png", 1, 2, 3, 4),)
        j.append([Record("a/3.jpg", reason="no face")])
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and all(line.endswith("}") for line in lines)
    assert set(Journal(path, SETTINGS).open().records) == {"a/1.jpg", "a/2.jpg", "a/3.jpg"}


def test_other_settings_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    Journal(path, SETTINGS).open().close()
    with pytest.raises(InputError, match="margin: 32 -> 44"):
        Journal(path, {**SETTINGS, "margin": 44}).open()


def test_a_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    first = Journal(path, SETTINGS).open()
    with pytest.raises(InputError, match="another 'facenet align' run"):
        Journal(path, SETTINGS).open()
    first.close()
    Journal(path, SETTINGS).open().close()
