"""Exports other tools read (.pb, ONNX, TFLite): written, loaded back, measured; ONNX models in."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.commands.export import FORMAT_NAMES
from facenet_cli.models.export_formats import EXPORT_FORMATS
from facenet_cli.models.loading import embedding_fn, load_embedding_model
from tests.models.runs import INFO, write_run
from tests.models.test_frozen_graph import faces_folder, read_folder

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("formats")
    _, ema = write_run(base / "run")
    faces = faces_folder(base / "faces", size=INFO.image_size)
    out = base / "export"
    result = CliRunner().invoke(
        app,
        ["export", str(base / "run"), str(out), "--to", "pb,onnx", "--to", "tflite",
         "--to", "tflite-fp16", "--to", "tflite-int8", "--representative", str(faces)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return ema, faces, out, result.output


def test_the_cli_formats_are_the_export_table() -> None:
    assert FORMAT_NAMES == tuple(f.name for f in EXPORT_FORMATS)


def test_every_export_reloads_within_its_tolerance(exported) -> None:
    ema, faces, out, output = exported
    _, pixels = read_folder(faces)
    reference = embedding_fn(ema, INFO)(pixels)
    for form in EXPORT_FORMATS:
        path = out / form.file_name
        # The printed figure is the measured one, and within the format's tolerance.
        printed = re.search(rf"{re.escape(form.name)}:\s*\S+\s+\(max \|diff\| vs Keras (\S+)\)",
                            output)  # fmt: skip
        assert printed is not None, output
        assert float(printed.group(1)) <= form.tolerance
        model = load_embedding_model(path)
        assert model.info == INFO and model.assumed is None  # the sidecar beside it
        diff = np.abs(model.embed(pixels) - reference).max()
        assert diff <= form.tolerance, (form.name, diff)
        if form.name in ("pb", "onnx", "tflite"):
            assert diff < 1e-4
    assert json.loads((out / "model.onnx").with_suffix(".json").read_text())["model_def"] == "small"


def test_the_pb_export_runs_in_a_tf1_session_as_the_originals(exported) -> None:
    import tensorflow as tf

    ema, faces, out, _ = exported
    _, pixels = read_folder(faces)
    standardised = np.asarray(tf.image.per_image_standardization(pixels))
    v1 = tf.compat.v1
    graph_def = v1.GraphDef()
    graph_def.ParseFromString((out / "model.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
        with v1.Session(graph=graph) as sess:
            got = sess.run(
                "embeddings:0",
                {"input:0": standardised, "phase_train:0": False},
            )  # fmt: skip
    np.testing.assert_allclose(got, embedding_fn(ema, INFO)(pixels), atol=1e-5)


def test_validate_on_each_export_matches_the_source(exported, tmp_path) -> None:
    from facenet_cli.data.pairs import make_pairs, write_pairs

    _, faces, out, _ = exported
    pairs = tmp_path / "pairs.txt"
    write_pairs(pairs, make_pairs(faces, 2, 6, seed=0), 2, 6)
    accuracy = {}
    for model in (out, out / "model.onnx", out / "model.tflite", out / "model-fp16.tflite"):
        run = CliRunner().invoke(
            app, ["validate", str(faces), str(model), "--lfw-pairs", str(pairs), "--json"]
        )
        assert run.exit_code == 0, run.output
        accuracy[model.name] = json.loads(run.output[run.output.index("{\n") :])["accuracy"]
    assert all(abs(a - accuracy[out.name]) <= 0.002 for a in accuracy.values()), accuracy


def _nchw_onnx(path: Path, size: int = 112, dim: int = 8) -> np.ndarray:
    """An insightface-shaped ONNX model: NCHW 112 px in, mean colour times a matrix out."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).normal(size=(3, dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input.1", "axes"], ["pooled"], keepdims=0),
            helper.make_node("MatMul", ["pooled", "w"], ["683"]),
        ],
        "arcface_like",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, size, size])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", dim])],
        [numpy_helper.from_array(weights, "w"),
         numpy_helper.from_array(np.array([2, 3], np.int64), "axes")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return weights


def test_an_nchw_onnx_model_without_a_sidecar(tmp_path) -> None:
    weights = _nchw_onnx(tmp_path / "w600k_r50.onnx")
    model = load_embedding_model(tmp_path / "w600k_r50.onnx")
    assert (model.kind, model.info.image_size, model.info.embedding_size) == ("onnx", 112, 8)
    assert "fixed image standardisation" in model.assumed and "NCHW" in model.assumed
    pixels = np.random.default_rng(1).uniform(0, 255, (3, 112, 112, 3)).astype(np.float32)
    out = ((pixels - 127.5) / 128.0).mean(axis=(1, 2)) @ weights
    expected = out / np.linalg.norm(out, axis=1, keepdims=True)
    np.testing.assert_allclose(model.embed(pixels), expected, atol=1e-5)


def test_a_corrupt_onnx_file_gets_one_line(tmp_path) -> None:
    _nchw_onnx(tmp_path / "good.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes((tmp_path / "good.onnx").read_bytes()[:40])
    faces = tmp_path / "f" / "a"
    faces.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (112, 112)).save(faces / "a_0001.png")
    result = CliRunner().invoke(
        app, ["embed", str(bad), str(faces.parent), "--out", str(tmp_path / "e.npz")]
    )
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "not a loadable ONNX model" in lines[0] and str(bad) in lines[0]


def test_a_missing_onnxruntime_names_the_extra(tmp_path, monkeypatch) -> None:
    _nchw_onnx(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an absent package looks like
    result = CliRunner().invoke(
        app, ["compare", str(tmp_path / "m.onnx"), str(tmp_path / "x.png"), str(tmp_path / "y.png")]
    )
    assert result.exit_code != 0
    assert "pip install -e '.[onnx]'" in result.output
    assert len(result.output.strip().splitlines()) == 1
