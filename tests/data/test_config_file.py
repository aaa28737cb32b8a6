"""``--config FILE.toml``: reading, command tables, unknown keys, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.config import TrainConfig, to_toml_dict
from facenet_cli.data.config_file import read_config_file
from facenet_cli.errors import EXIT_BAD_INPUT, InputError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_keys_kebab_or_snake_and_command_table_wins(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        'image-size = 96\nalpha = 0.3\noptimizer = "ADAM"\n'
        "[train]\nalpha = 0.5\n[align]\nmargin = 10\n",
    )
    assert read_config_file(path) == {"image_size": 96, "alpha": 0.5, "optimizer": "ADAM"}
    assert read_config_file(path, command="align") == {
        "image_size": 96,
        "alpha": 0.3,
        "optimizer": "ADAM",
        "margin": 10,
    }


def test_unknown_key_suggests_the_closest(tmp_path: Path) -> None:
    path = _write(tmp_path, "imag_size = 96\n")
    with pytest.raises(InputError, match="unknown option 'imag_size'.*did you mean 'image_size'"):
        read_config_file(path, known={"image_size", "alpha"})
    path = _write(tmp_path, "[model]\nx = 1\n")
    with pytest.raises(InputError, match="unknown table 'model'"):
        read_config_file(path, known={"image_size"})


def test_saved_run_config_reads_back(tmp_path: Path) -> None:
    import tomllib

    config = TrainConfig(data_dir="/data/a:/data/b", image_size=96, max_steps=10)
    lines = []
    for key, value in to_toml_dict(config).items():
        if isinstance(value, str):
            value = f'"{value}"'
        elif isinstance(value, bool):
            value = str(value).lower()
        lines.append(f"{key} = {value}")
    path = _write(tmp_path, "\n".join(lines) + "\n")
    known = set(TrainConfig.__dataclass_fields__)
    options = read_config_file(path, known=known)
    assert options == tomllib.loads(path.read_text())
    assert options["data_dir"] == "/data/a:/data/b" and options["image_size"] == 96


@pytest.mark.parametrize(
    ("content", "match"),
    [(None, "config file not found"), ("a = [1,\n", "not valid TOML"), (b"\xff\xfe", "TOML")],
)
def test_bad_files(tmp_path: Path, content: str | bytes | None, match: str) -> None:
    path = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=match) as info:
        read_config_file(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_cli_rejects_unknown_option_in_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "imag_size = 96\n")
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == EXIT_BAD_INPUT
    assert "did you mean 'image_size'" in result.output


def test_values_are_checked_against_the_config_types(tmp_path: Path) -> None:
    from facenet_cli.config import TrainConfig

    good = tmp_path / "good.toml"
    good.write_text('batch_size = 30\nalpha = 1\nlfw_dir = "x"\nrandom_flip = true\n')
    assert read_config_file(good, schema=TrainConfig)["alpha"] == 1
    for text, key in [
        ('random_flip = "yes"', "random_flip"),
        ("batch_size = 1.5", "batch_size"),
        ("batch_size = true", "batch_size"),
        ("lfw_dir = 3", "lfw_dir"),
    ]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text + "\n")
        with pytest.raises(InputError, match=f"bad.toml: '{key}' must be"):
            read_config_file(bad, schema=TrainConfig)
