"""``facenet align`` under SIGKILL at random moments and a full disk: the rerun's output equals an
uninterrupted run's, byte for byte, with no partial or duplicate files."""

from __future__ import annotations

import random
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.errors import EXIT_IO
from tests.align.faces import write_dataset
from tests.faults.fault_helpers import (
    SLOW_START_S,
    assert_one_line_error,
    cli,
    env,
    run,
    run_python,
    wait_for,
)
from tests.faults.fs import small_tmpfs

JOURNAL = ".align-journal.jsonl"


def align_args(src: Path, out: Path) -> list[str]:
    return cli("align", src, out, "--workers", "1", "--batch-size", "1", "--image-size", "40",
               "--margin", "8")  # fmt: skip


def snapshot(out: Path) -> dict[str, bytes]:
    """Every file but the journal, with the output path written as <OUT> (the box file holds it)."""
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and not p.name.startswith(".align-journal"):
            files[str(p.relative_to(out))] = p.read_bytes().replace(str(out).encode(), b"<OUT>")
    return files


def records(out: Path) -> int:
    journal = out / JOURNAL
    return max(journal.read_bytes().count(b"\n") - 1, 0) if journal.exists() else 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Eight faces, a faceless image and a broken one; the uninterrupted run's output."""
    root = tmp_path_factory.mktemp("align_faults")
    src = root / "in"
    write_dataset(src, n_per_class=4, canvas_hw=(200, 240))
    Image.fromarray(np.full((60, 60, 3), 30, np.uint8)).save(src / "alice" / "dark.png")
    (src / "bob" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    reference = root / "reference"
    done = run(align_args(src, reference))
    assert done.returncode == 0, done.stderr[-3000:]
    snap = snapshot(reference)
    assert any(k.endswith(".png") for k in snap) and "failures.txt" in snap
    return {"src": src, "reference": snap, "total": 10}


def assert_same_as_reference(out: Path, reference: dict[str, bytes]) -> None:
    leftovers = [p.name for p in out.rglob(".*") if p.is_file() and p.name.endswith(".tmp")]
    assert not leftovers, f"partial files left behind: {leftovers}"
    got = snapshot(out)
    assert sorted(got) == sorted(reference), "missing or duplicate files"
    for name, data in reference.items():
        assert got[name] == data, f"{name} differs from the uninterrupted run's"


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(dataset: dict, tmp_path: Path) -> None:
    rng = random.Random(20261128)
    out = tmp_path / "killed"
    kills = []
    for attempt in range(3):
        proc = subprocess.Popen(align_args(dataset["src"], out), env=env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        # A random moment: the first kill lands during start-up, the others as soon as the
        # journal reaches a random number of records (i.e. mid-dataset, crops being written).
        if attempt == 0:
            wait_for(lambda: False, proc, rng.uniform(0.5, 4.0))
        else:
            target = rng.randint(1, 4) if attempt == 1 else rng.randint(5, 8)
            wait_for(lambda t=target: records(out) >= t, proc, SLOW_START_S)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills.append((proc.returncode, records(out)))
    print(f"kills (exit status, journal records): {kills}")  # shown by pytest -rP
    total = dataset["total"]
    assert any(rc == -signal.SIGKILL and 0 < n < total for rc, n in kills), f"none mid-way: {kills}"
    done = run(align_args(dataset["src"], out))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_as_reference(out, dataset["reference"])
    # The journal holds each input once after compaction or at most a redone chunk before it.
    assert records(out) >= dataset["total"]


# ------------------------------------------------------------------------------- disk full

_ENOSPC_HOOK = """
import errno, sys
from PIL import Image
saves, limit = [0], int(sys.argv[1])
real = Image.Image.save
def save(self, fp, *a, **k):
    saves[0] += 1
    if saves[0] > limit:
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))
    return real(self, fp, *a, **k)
Image.Image.save = save
from facenet_cli.cli import main
sys.argv = ["facenet", *sys.argv[2:]]
main()
"""


@pytest.mark.slow
def test_disk_full_then_space_freed(dataset: dict, tmp_path: Path) -> None:
    out = tmp_path / "full"
    out.mkdir()
    args = align_args(dataset["src"], out)[3:]
    with small_tmpfs(out, "20k") as fs:
        if fs is None:
            # No mount here: the write layer fails with ENOSPC after three crops instead.
            full = run_python(_ENOSPC_HOOK, "3", *args)
        else:
            full = run(cli(*args))
        line = assert_one_line_error(full, EXIT_IO, out)
        assert "No space left on device" in line
        kept = {p.name: p.read_bytes() for p in out.rglob("*.png")}
        for name, data in kept.items():
            # Every crop already written is whole (the reference's bytes), none is partial.
            ref = [v for k, v in dataset["reference"].items() if k.endswith("/" + name)]
            assert ref and ref[0] == data, name
        if fs is not None:
            fs.resize("8m")
        done = run(cli(*args))
        assert done.returncode == 0, done.stderr[-3000:]
        assert_same_as_reference(out, dataset["reference"])


# ------------------------------------------------------------------------------ bad inputs


@pytest.mark.slow
def test_align_records_every_bad_image_and_carries_on(tmp_path: Path) -> None:
    import shutil

    from tests.data.bad.make_bad_inputs import UNDECODABLE, make_bad_inputs

    corpus = make_bad_inputs(tmp_path / "bad")
    src = tmp_path / "src dir ü"
    shutil.copytree(corpus.images, src, symlinks=True)
    assert corpus.odd_paths is not None
    for cls in corpus.odd_paths.iterdir():
        shutil.copytree(cls, src / cls.name)
    out = tmp_path / "out"
    done = run(cli("align", src, out, "--workers", "1", "--image-size", "32"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout
    failures = dict(line.split("\t", 1) for line in (out / "failures.txt").read_text().splitlines())
    for kind in UNDECODABLE:
        path = str(src / kind / corpus.image_files[kind].name)
        assert path in failures, kind
        assert "no face" not in failures[path], (kind, failures[path])
    # Every input is accounted for once: in the failures file or the box file.
    boxes = (out / "bounding_boxes.txt").read_text().splitlines()
    inputs = [p for p in src.rglob("*") if p.suffix.lower() in {".jpg", ".png"}]
    assert len(failures) + len(boxes) >= len(inputs)
    assert not [p for p in out.rglob(".*.tmp")]
