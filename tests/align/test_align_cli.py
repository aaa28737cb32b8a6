"""``facenet align`` on the command line: options reach the run, errors are one line."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from facenet_cli.cli import app
from tests.align.faces import write_dataset

runner = CliRunner()


def test_align_command_with_original_flags(tmp_path: Path) -> None:
    src = tmp_path / "in"
    write_dataset(src, n_per_class=1, classes=("a", "b"))
    out = tmp_path / "out"
    args = [
        "align",
        str(src),
        str(out),
        "--image_size",
        "40",
        "--margin",
        "10",
        "--workers",
        "1",
        "--detect-multiple-faces",
        "--thresholds",
        "0.6",
        "0.7",
        "0.7",
        "--random-order",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*/*.png")) == ["a_0001_0.png", "b_0001_0.png"]
    assert Image.open(out / "a" / "a_0001_0.png").size == (40, 40)
    assert "faces written" in result.output


def test_bad_shard_and_missing_input_are_one_line_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["align", str(tmp_path / "nope"), str(tmp_path / "out")])
    assert result.exit_code == 3
    assert "input directory not found" in result.output
    write_dataset(tmp_path / "in", n_per_class=1, classes=("a",))
    result = runner.invoke(
        app, ["align", str(tmp_path / "in"), str(tmp_path / "o"), "--shard", "2/2"]
    )
    assert result.exit_code == 3
    assert "--shard '2/2'" in result.output
    assert "Traceback" not in result.output
    # Crops written where the next run would read them as photos: refused.
    for out in (tmp_path / "in", tmp_path / "in" / "a" / "crops"):
        result = runner.invoke(app, ["align", str(tmp_path / "in"), str(out)])
        assert result.exit_code == 3 and "where its crops would be read as photos" in result.output
    # An input that is a file; an output under a file (a failed write: exit 6).
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = runner.invoke(app, ["align", str(blocker), str(tmp_path / "o2")])
    assert result.exit_code == 3 and "file: not a directory" in result.output
    result = runner.invoke(app, ["align", str(tmp_path / "in"), str(blocker / "out")])
    assert result.exit_code == 6 and "cannot create output directory" in result.output
