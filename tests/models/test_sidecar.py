"""model.json: round trip and one-line errors for broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facenet_cli.errors import InputError
from facenet_cli.models.sidecar import ModelInfo, read_model_info, write_model_info


def test_round_trip_in_a_folder_and_as_a_file(tmp_path: Path) -> None:
    info = ModelInfo("inception_resnet_v1", 512, 160, "fixed", "BGR", 0.8, 5e-4)
    written = write_model_info(tmp_path / "run", info)
    assert written == tmp_path / "run" / "model.json"
    assert read_model_info(tmp_path / "run") == info
    assert read_model_info(write_model_info(tmp_path / "x.json", info)) == info
    assert json.loads(written.read_text())["standardization"] == "fixed"


def test_defaults_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"model_def": "small", "embedding_size": 64, "image_size": 96,
                                "standardization": "per_image", "future_field": 1}))  # fmt: skip
    assert read_model_info(path) == ModelInfo("small", 64, 96, "per_image", "RGB", 1.0, 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not a readable JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"model_def": "small", "image_size": 9}', "missing field"),
        ('{"model_def": "small", "embedding_size": 8, "image_size": 9, "standardization": "x"}',
         "standardization must be one of"),
    ],
)  # fmt: skip
def test_broken_files_raise_one_line_input_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "model.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_model_info(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="model sidecar not found"):
        read_model_info(tmp_path)
