"""The command-line skeleton: help, version, aliases, one-line errors, and no TensorFlow."""

from __future__ import annotations

import re
import subprocess
import sys

from typer.testing import CliRunner

from facenet_cli import __version__
from facenet_cli.cli import app, normalize_option_names

runner = CliRunner()


COMMANDS = ["align", "train", "validate", "pairs", "export", "board", "demo"]


def _panel_rows(output: str, title: str) -> list[str]:
    """The first word of each entry row of the help panel ``title`` (Rich's boxed layout)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"╭─ {title} "))
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("╰"):
            break
        # An entry starts one space into the box; a wrapped description is indented further.
        match = re.match(r"│ (\S+)  ", line)
        if match:
            rows.append(match.group(1))
    return rows


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    # The commands panel itself, in registration order (the app's description also names
    # align, train and validate, so a plain substring check would pass without them).
    assert _panel_rows(result.output, "Commands") == COMMANDS
    assert _panel_rows(result.output, "Options") == ["--version", "--debug", "--help"]


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
    for name in COMMANDS:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
