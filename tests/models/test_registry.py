"""The model registry: names, the original's spellings, user functions and the error."""

from __future__ import annotations

import sys
import types

import keras
import pytest

from facenet_cli.models import create_model, model_names, resolve_model_def
from facenet_cli.models.registry import UnknownModelError


def test_registered_names() -> None:
    assert {"inception_resnet_v1", "inception_resnet_v2", "squeezenet", "small"} <= set(
        model_names()
    )


@pytest.mark.parametrize(
    "spec", ["inception_resnet_v1", "models.inception_resnet_v1", "src.models.inception_resnet_v1"]
)
def test_original_spellings_resolve(spec: str) -> None:
    name, builder = resolve_model_def(spec)
    assert name == "inception_resnet_v1" and builder.__name__ == "inception_resnet_v1"


def test_user_function(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("my_face_models")

    def tiny(image_size=160, embedding_size=128, **_):
        inputs = keras.Input((image_size, image_size, 3))
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        return keras.Model(inputs, keras.layers.Dense(embedding_size)(x), name="tiny")

    module.tiny = tiny
    monkeypatch.setitem(sys.modules, "my_face_models", module)
    model = create_model("my_face_models:tiny", embedding_size=7, image_size=20)
    assert model.name == "tiny" and model.output.shape == (None, 7)


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownModelError) as info:
        resolve_model_def("inception_resnet_v3")
    message = str(info.value)
    assert "inception_resnet_v3" in message and "inception_resnet_v1" in message
    assert "squeezenet" in message and "\n" not in message


def test_bad_user_targets_are_one_line_errors() -> None:
    with pytest.raises(UnknownModelError, match="cannot import"):
        resolve_model_def("no_such_pkg_xyz.models:build")
    with pytest.raises(UnknownModelError, match="has no function"):
        resolve_model_def("facenet_cli.models.small:nope")


def test_create_model_builds_the_named_model() -> None:
    model = create_model("small", embedding_size=32, image_size=48, keep_probability=0.8)
    assert model.name == "small"
    assert model.input.shape == (None, 48, 48, 3) and model.output.shape == (None, 32)
