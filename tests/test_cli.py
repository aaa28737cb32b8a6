"""The command-line skeleton: help, version, aliases, one-line errors, and no TensorFlow."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import typer
from typer.testing import CliRunner

from facenet_cli import __version__
from facenet_cli.cli import app, normalize_option_names

runner = CliRunner()


COMMANDS = [
    "align",
    "train",
    "validate",
    "pairs",
    "export",
    "board",
    "demo",
    "compare",
    "embed",
    "classify",
]


def _section_rows(output: str, title: str) -> list[str]:
    """The first word of each entry of the help section ``title`` (Click's plain layout)."""
    lines = output.splitlines()
    start = lines.index(f"{title}:")
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        # An entry starts two spaces in; a wrapped description is indented further.
        match = re.match(r"  (?:-\w, )?(\S+)", line)
        if match and not line.startswith("   "):
            rows.append(match.group(1))
    return rows


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    # The commands section itself, in registration order (the app's description also names
    # align, train and validate, so a plain substring check would pass without them).
    assert _section_rows(result.output, "Commands") == COMMANDS
    assert _section_rows(result.output, "Options") == ["--version", "--debug", "--help"]


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
    for name in [*COMMANDS, "classify train", "classify predict"]:
        result = runner.invoke(app, [*name.split(), "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_every_option_name_is_whole_in_help_at_80_columns() -> None:
    for name in COMMANDS:
        command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
        result = runner.invoke(app, [name, "--help"], terminal_width=80)
        assert result.exit_code == 0, result.output
        assert "…" not in result.output
        for param in command.params:
            for opt in [*param.opts, *getattr(param, "secondary_opts", [])]:
                if opt.startswith("--"):
                    assert opt in result.output, (name, opt)


def test_tensorflow_start_up_lines_are_hidden_unless_asked_for() -> None:
    # One real TensorFlow import and device query (the cuInit error appears here without a GPU).
    code = (
        "import sys; from facenet_cli.tf_quiet import quiet_tensorflow;"
        "quiet_tensorflow(debug=sys.argv[1] == 'debug');"
        "import tensorflow as tf; tf.config.list_physical_devices()"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", code, "quiet"], capture_output=True, text=True,
                           env=env, check=True)  # fmt: skip
    assert quiet.stderr == ""


def test_debug_or_the_users_level_leaves_tensorflow_logging_alone(monkeypatch) -> None:
    from facenet_cli import tf_quiet

    def hooks() -> int:
        return sum(isinstance(f, tf_quiet._QuietTensorFlowImport) for f in sys.meta_path)

    before = hooks()
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    tf_quiet.quiet_tensorflow(debug=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and hooks() == before
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    tf_quiet.quiet_tensorflow(debug=False)
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" and hooks() == before


def test_train_option_values_outside_their_choices_are_usage_errors(tmp_path) -> None:
    """Exit 2 naming the option from the command line; exit 3 naming the file from --config."""
    for option, value in (("--optimizer", "sgd"), ("--triplet-selection", "easy"),
                          ("--selection-mode", "eval"), ("--loss", "cosine")):  # fmt: skip
        result = CliRunner().invoke(app, ["train", option, value, "--data-dir", str(tmp_path)])
        assert result.exit_code == 2, result.output
        assert f"'{value}' is not one of" in result.output and option in result.output
    config = tmp_path / "run.toml"
    config.write_text('optimizer = "sgd"\n')
    result = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert result.exit_code == 3, result.output
    assert f"{config}: optimizer = 'sgd'" in result.output
    for args in (["train", "--learning-rate", "nan"], ["train", "--moving-average-decay", "1.5"],
                 ["demo", "--minutes", "inf", "--dry-run"]):  # fmt: skip
        result = CliRunner().invoke(app, [*args, "--out" if args[0] == "demo" else "--data-dir",
                                          str(tmp_path)])  # fmt: skip
        assert result.exit_code == 2, (args, result.output)
        assert args[1] in result.output
    # Case is not significant for the optimizer (as the original's).
    from facenet_cli.config import TrainConfig
    from facenet_cli.options import check_options

    check_options(TrainConfig(optimizer=" adam "))
    result = CliRunner().invoke(app, ["train", "--optimizer", "Adam", "--help"])
    assert result.exit_code == 0, result.output
