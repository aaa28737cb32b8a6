"""Each option is declared once (``TrainConfig``): ``--help``, the command line, a ``--config``
file and the library agree on its default, range and choices."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.config import TrainConfig
from facenet_cli.errors import InputError
from facenet_cli.options import check_options, declared, field_default, flag


def _help_entries() -> dict[str, str]:
    """``--option`` -> its whole entry in ``facenet train --help``, unwrapped."""
    result = CliRunner().invoke(app, ["train", "--help"])
    assert result.exit_code == 0, result.output
    entries: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in result.output.splitlines():
        if line.startswith("  --"):
            current = entries.setdefault(line.split()[0], [])
        elif not line.strip() or not line.startswith("   "):
            current = None
        if current is not None:
            current.append(line.strip())
    # The wrapping breaks lines after hyphens: joined back without the space.
    return {k: " ".join(v).replace("- ", "-") for k, v in entries.items()}


def _render(value: object, name: str) -> str:
    if isinstance(value, bool):
        return name if value else "no-" + name
    return str(value)


def test_every_default_in_help_is_the_library_default() -> None:
    entries = _help_entries()
    library = TrainConfig()
    checked = 0
    for f, opt in declared(TrainConfig):
        entry = entries.get(flag(f.name))
        assert entry is not None, f"{flag(f.name)} is not in --help"
        shown = re.search(r"\[default: \((.*?)\)[;\]]", entry)
        default = field_default(f)
        if default is None or default == ():
            # Resolved later: --help says how, in the declaration's words.
            assert (shown is None) == (opt.shown_default is None), entry
            continue
        assert shown is not None, f"{flag(f.name)}: no default in --help: {entry}"
        if f.default_factory is not dataclasses.MISSING:
            continue  # a folder from the environment, read when the command line was built
        assert shown.group(1) == _render(getattr(library, f.name), f.name.replace("_", "-"))
        checked += 1
    assert checked >= 40  # nearly every option has a plain default


def test_every_field_is_an_option_and_every_option_a_field() -> None:
    entries = _help_entries()
    fields = {flag(f.name) for f in dataclasses.fields(TrainConfig)}
    assert fields == {flag(f.name) for f, _ in declared(TrainConfig)}
    assert set(entries) == fields | {"--config"}


@pytest.mark.parametrize(
    ("option", "value", "why"),
    [
        ("validation_set_split_ratio", 1.0, "not in [0, 1)"),
        ("margin", 1.6, "not in [0, pi/2)"),
        ("moving_average_decay", 1.5, "not in [0, 1]"),
        ("margin_scale", 0.0, "not > 0"),
        ("loss", "sphereface", "not one of triplet, softmax, arcface, cosface"),
        ("optimizer", "sgd", "not one of ADAGRAD"),
        ("learning_rate", float("nan"), "not a finite number"),
    ],
)
def test_the_command_line_and_the_library_refuse_the_same_values(
    option: str, value: object, why: str, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=re.escape(why)):
        check_options(TrainConfig(**{option: value}))
    given = CliRunner().invoke(app, ["train", flag(option), str(value), "--data-dir", "x"])
    assert given.exit_code == 2 and why in " ".join(given.output.split()), given.output
    config = tmp_path / "run.toml"
    config.write_text(f"{option} = {value!r}\n".replace("nan", "nan").replace("'", '"'))
    from_file = CliRunner().invoke(app, ["train", "--config", str(config)])
    assert from_file.exit_code == 3, from_file.output
    assert f"{config}: {option} = " in " ".join(from_file.output.split()), from_file.output


def test_values_inside_the_ranges_pass() -> None:
    check_options(TrainConfig(validation_set_split_ratio=0.99, margin=1.5, optimizer=" adam ",
                              loss="cosface", margin_scale=30.0))  # fmt: skip
