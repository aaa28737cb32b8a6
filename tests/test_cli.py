"""The command-line skeleton: help, version, aliases, one-line errors, and no TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from facenet_cli import __version__
from facenet_cli.cli import app, normalize_option_names

runner = CliRunner()


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("align", "train", "validate", "board", "demo", "export", "pairs", "compare",
                 "embed", "classify"):  # fmt: skip
        assert name in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_snake_case_aliases_are_rewritten() -> None:
    args = ["align", "--image_size", "160", "--lfw_dir=/a_b", "in_dir", "--", "--x_y"]
    assert normalize_option_names(args) == [
        "align",
        "--image-size",
        "160",
        "--lfw-dir=/a_b",
        "in_dir",
        "--",
        "--x_y",
    ]


def test_snake_case_option_is_accepted_by_the_parser() -> None:
    # Out-of-range value proves the alias reached the real option (and gives a usage error).
    result = runner.invoke(app, ["align", "--image_size", "2"])
    assert result.exit_code == 2
    assert "image-size" in result.output


def test_unknown_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["train", "--no-such-option", "1"])
    assert result.exit_code == 2


def test_help_does_not_import_tensorflow_and_is_fast() -> None:
    code = (
        "import sys, time; t = time.perf_counter();"
        "from typer.testing import CliRunner; from facenet_cli.cli import app;"
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output;"
        "heavy = ('tensorflow', 'keras', 'mtcnn', 'textual');"
        "bad = [m for m in sys.modules if m.split('.')[0] in heavy];"
        "assert not bad, bad; print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Generous bound for a shared CI host; typically ~0.2 s.
    assert float(out.stdout.strip().splitlines()[-1]) < 2.0


def test_every_command_help_works() -> None:
    names = ["align", "train", "validate", "board", "demo", "export", "pairs", "compare", "embed"]
    for name in [*names, "classify train", "classify predict"]:
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)
