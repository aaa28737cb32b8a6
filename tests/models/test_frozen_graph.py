"""The original's released models: a frozen graph from the original's network code, frozen the
original's way, gives the original session's embeddings through the commands; bad files get
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.errors import InputError
from facenet_cli.models.frozen_graph import load_frozen_graph
from facenet_cli.models.loading import load_embedding_model
from tests.models import tf1_reference

SIZE = 80  # the smallest input every valid convolution of Inception-ResNet-v1 takes
PEOPLE, PHOTOS = 6, 3


def faces_folder(root: Path, size: int = SIZE) -> Path:
    """Real LFW crops (skimage), one person each, photos shifted and noisier; RGB PNGs."""
    from skimage import data

    faces = data.lfw_subset()[:PEOPLE]
    rng = np.random.default_rng(0)
    for p, face in enumerate(faces):
        grey = np.asarray(Image.fromarray((face * 255).astype(np.uint8)).resize((size, size)))
        (root / f"person_{p}").mkdir(parents=True)
        for k in range(PHOTOS):
            img = np.roll(grey, rng.integers(-2, 3, 2), axis=(0, 1)).astype(float)
            img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
            rgb = np.stack([img, np.roll(img, 1, 0), img // 2 + 60], axis=2).astype(np.uint8)
            Image.fromarray(rgb).save(root / f"person_{p}" / f"person_{p}_{k + 1:04d}.png")
    return root


def read_folder(root: Path) -> tuple[list[str], np.ndarray]:
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))
    return paths, np.stack([np.asarray(Image.open(root / p), np.float32) for p in paths])


def fixed(images: np.ndarray) -> np.ndarray:
    return (images - 127.5) / 128.0


def prewhiten(images: np.ndarray) -> np.ndarray:
    """The original's ``facenet.prewhiten``, per image."""
    mean = images.mean(axis=(1, 2, 3), keepdims=True)
    std = images.std(axis=(1, 2, 3), keepdims=True)
    return (images - mean) / np.maximum(std, 1.0 / np.sqrt(images[0].size))


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return faces_folder(tmp_path_factory.mktemp("faces") / "aligned")


@pytest.fixture(scope="module")
def release_2018(tmp_path_factory: pytest.TempPathFactory, faces: Path):
    """Inception-ResNet-v1, 512-d, fixed standardisation, as the 2018 releases."""
    name = "20180402-114759"
    folder = tmp_path_factory.mktemp("release") / name
    _, pixels = read_folder(faces)
    expected = tf1_reference.write_release(
        "inception_resnet_v1", fixed(pixels), folder, name, bottleneck_size=512
    )
    return folder, folder / f"{name}.pb", expected


def embed_cli(model: Path, faces: Path, out: Path) -> tuple[list[str], np.ndarray, str]:
    result = CliRunner().invoke(app, ["embed", str(model), str(faces), "--out", str(out)])
    assert result.exit_code == 0, result.output
    with np.load(out, allow_pickle=False) as data:
        return [str(p) for p in data["paths"]], data["embeddings"], result.output


def test_embed_on_a_released_pb_gives_the_original_sessions_512d_embeddings(
    release_2018, faces, tmp_path
) -> None:
    _, pb, expected = release_2018
    paths, got, output = embed_cli(pb, faces, tmp_path / "e.npz")
    assert paths == read_folder(faces)[0]
    assert got.shape == (PEOPLE * PHOTOS, 512)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # The standardisation assumed for a model without a sidecar is stated.
    assert "fixed image standardisation" in output and "2018" in output


def test_embed_on_a_2017_pb_gives_the_original_sessions_128d_embeddings(faces, tmp_path) -> None:
    name = "20170512-110547"
    _, pixels = read_folder(faces)
    expected = tf1_reference.write_release(
        "squeezenet", prewhiten(pixels), tmp_path / name, name, bottleneck_size=128
    )
    _, got, output = embed_cli(tmp_path / name / f"{name}.pb", faces, tmp_path / "e.npz")
    assert got.shape == (PEOPLE * PHOTOS, 128)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert "per_image image standardisation" in output
    # --pretrained-model takes the graph's constants by the original's names.
    from facenet_cli.models import create_model
    from facenet_cli.models.loading import load_pretrained

    keras_model = create_model("squeezenet", embedding_size=128, image_size=SIZE)
    assert load_pretrained(keras_model, tmp_path / name / f"{name}.pb").startswith("frozen graph")
    prelogits = np.asarray(keras_model(prewhiten(pixels), training=False), np.float64)
    normalised = prelogits / np.linalg.norm(prelogits, axis=1, keepdims=True)
    np.testing.assert_allclose(normalised, expected, atol=1e-4)


def test_validate_on_the_pb_equals_validate_on_the_released_folder(
    release_2018, faces, tmp_path
) -> None:
    from facenet_cli.data.pairs import make_pairs, write_pairs

    folder, pb, _ = release_2018
    pairs = tmp_path / "pairs.txt"
    write_pairs(pairs, make_pairs(faces, 2, 6, seed=0), 2, 6)
    results = {}
    for model in (pb, folder):
        run = CliRunner().invoke(
            app, ["validate", str(faces), str(model), "--lfw-pairs", str(pairs), "--json"]
        )
        assert run.exit_code == 0, run.output
        data = json.loads(run.output[run.output.index("{\n") :])
        results[model] = data
    a, b = results[pb], results[folder]
    assert a["model_info"]["embedding_size"] == b["model_info"]["embedding_size"] == 512
    assert a["model_info"]["standardization"] == b["model_info"]["standardization"] == "fixed"
    for key in ("accuracy", "auc", "eer", "nrof_pairs"):
        assert a[key] == pytest.approx(b[key], abs=1e-9), key


def _one_line_error(model: Path, tmp_path: Path) -> str:
    faces = tmp_path / "f"
    (faces / "a").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (SIZE, SIZE)).save(faces / "a" / "a_0001.png")
    out = tmp_path / "e.npz"
    result = CliRunner().invoke(app, ["embed", str(model), str(faces), "--out", str(out)])
    assert result.exit_code == 3, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(model) in lines[0]
    return lines[0]


def test_bad_pb_files_get_one_line_errors(release_2018, tmp_path) -> None:
    import tensorflow as tf

    _, pb, _ = release_2018
    truncated = tmp_path / "truncated.pb"
    truncated.write_bytes(pb.read_bytes()[:100_000])
    assert "truncated or not a GraphDef" in _one_line_error(truncated, tmp_path)
    example = tf.train.Example(
        features=tf.train.Features(
            feature={"x": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 2.0]))}
        )
    )
    other = tmp_path / "example.pb"
    other.write_bytes(example.SerializeToString())
    assert "not a frozen TensorFlow graph" in _one_line_error(other, tmp_path)


def test_a_graph_without_the_expected_tensors_lists_its_candidates(tmp_path) -> None:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, (None, 8, 8, 3), name="img")
        tf.identity(tf.reduce_mean(images, axis=[1, 2]), name="features")
    path = tmp_path / "other.pb"
    path.write_bytes(graph.as_graph_def().SerializeToString())
    with pytest.raises(InputError) as info:
        load_frozen_graph(path)
    message = str(info.value)
    assert "no input:0 or embeddings:0 tensor" in message
    assert "candidate inputs: img:0" in message and "features:0" in message
    assert "\n" not in message
    # Renamed to the original's names, the same graph loads and runs.
    graph = tf.Graph()
    with graph.as_default():
        images = tf.compat.v1.placeholder(tf.float32, (None, 8, 8, 3), name="input")
        tf.math.l2_normalize(tf.reduce_mean(images, axis=[1, 2]), 1, name="embeddings")
    path.write_bytes(graph.as_graph_def().SerializeToString())
    model = load_embedding_model(path)
    assert (model.kind, model.info.embedding_size, model.info.image_size) == ("frozen_graph", 3, 8)
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)
    means = fixed(pixels).mean(axis=(1, 2))
    expected = means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(model.embed(pixels), expected, atol=1e-6)
