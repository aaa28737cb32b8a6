"""Benchmarks: a pack of real face crops gives the figures of the same crops in a folder, several
benchmarks in one table / JSON / events, the worst pairs, every checkpoint of a run with the
embedding cache, and the trainer's in-memory multi-benchmark evaluation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.data import lfw_subset
from typer.testing import CliRunner

from facenet_cli import events as ev
from facenet_cli.cli import app
from facenet_cli.data.benchmark_sets import load_benchmark
from facenet_cli.data.pairs_file import PathPair, write_pairs
from facenet_cli.data.verification_pack import read_pack, write_pack
from facenet_cli.evaluate.benchmarks import benchmark_scalars, evaluate_benchmarks
from facenet_cli.evaluate.pairs_embedding import CropCache, evaluate_on_pack, evaluate_on_pairs
from facenet_cli.evaluate.worst import worst_indices, worst_pairs
from tests.data.test_verification_pack import write_cfp

SIZE = 16
FOLDS = 10
runner = CliRunner()


def faces() -> np.ndarray:
    """The 100 real LFW crops scikit-image ships, 25 px grey, as uint8 RGB."""
    grey = np.clip(np.rint(lfw_subset()[:100] * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=3)


def second_photo(face: np.ndarray, seed: int) -> np.ndarray:
    """Another photo of the same face: shifted a pixel, brighter or darker, with sensor noise."""
    rng = np.random.default_rng(seed)
    shifted = np.roll(face, int(rng.integers(-1, 2)), axis=1).astype(np.float64)
    out = shifted * rng.uniform(0.85, 1.15) + rng.normal(0, 12, face.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def encode(image: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def block_embed(images: np.ndarray) -> np.ndarray:
    """A real, deterministic embedding: 4x4 block means of the centred pixels, L2-normalised."""
    images = np.asarray(images, dtype=np.float32)
    n = len(images)
    blocks = images.reshape(n, 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4))
    v = blocks.reshape(n, -1) - blocks.reshape(n, -1).mean(axis=1, keepdims=True)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9)


def face_benchmark(root: Path, fmt: str = "PNG") -> tuple[Path, Path, Path]:
    """The same real crops as a folder with a pairs file and as an insightface pack.

    10 folds of 4 matched pairs (a face and its second photo) and 4 mismatched (two faces).
    """
    ext = ".png" if fmt == "PNG" else ".jpg"
    crops = faces()
    pairs, images = [], []
    folder = root / "folder"
    for k in range(FOLDS):
        for j in range(4):
            i = k * 4 + j
            pairs.append((f"p{i:03d}/a{ext}", f"p{i:03d}/b{ext}", True, crops[i],
                          second_photo(crops[i], i)))  # fmt: skip
        for j in range(4):
            i, o = 40 + k * 4 + j, (40 + k * 4 + j + 17) % 100
            pairs.append((f"p{i:03d}/a{ext}", f"p{o:03d}/c{ext}", False, crops[i],
                          second_photo(crops[o], 1000 + o)))  # fmt: skip
    for p1, p2, _, im1, im2 in pairs:
        for rel, im in ((p1, im1), (p2, im2)):
            data = encode(im, fmt)
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
            images.append(data)
    pairs_file = root / "pairs.txt"
    write_pairs(pairs_file, [PathPair(p1, p2, s) for p1, p2, s, _, _ in pairs], FOLDS, 4)
    pack = write_pack(root / "lfw.bin", images, [s for _, _, s, _, _ in pairs])
    return folder, pairs_file, pack


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return face_benchmark(tmp_path_factory.mktemp("faces"))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_pack_of_real_crops_gives_the_folders_figures(tmp_path, fmt):
    folder, pairs_file, pack_path = face_benchmark(tmp_path, fmt)
    kw = dict(image_size=SIZE, nrof_folds=FOLDS, batch_size=32)
    on_folder = evaluate_on_pairs(block_embed, folder, pairs_file, **kw)
    on_pack = evaluate_on_pack(block_embed, read_pack(pack_path), **kw)
    a, b = on_folder.result, on_pack.result
    assert a.nrof_pairs == b.nrof_pairs == 80
    assert 0.6 < a.accuracy_mean < 1.0  # a real task: neither chance nor trivial
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    np.testing.assert_array_equal(a.best_thresholds, b.best_thresholds)
    assert a.auc == b.auc and a.eer == b.eer
    np.testing.assert_array_equal(on_folder.distances, on_pack.distances)


def test_worst_pairs_are_the_protocols_mistakes(bench):
    folder, pairs_file, _ = bench
    report = evaluate_on_pairs(block_embed, folder, pairs_file, image_size=SIZE, nrof_folds=FOLDS)
    worst = worst_pairs(report, 3)
    wrong = round((1 - report.result.accuracy_mean) * 80)
    fa = [w for w in worst if w.kind == "false_accept"]
    fr = [w for w in worst if w.kind == "false_reject"]
    assert len(fa) + len(fr) == min(wrong, len(fa) + len(fr)) and wrong > 0
    assert all(w.distance < w.threshold and not report.issame[w.pair] for w in fa)
    assert all(w.distance >= w.threshold and report.issame[w.pair] for w in fr)
    assert [w.distance for w in fa] == sorted(w.distance for w in fa)
    assert all(Path(p).is_file() for w in worst for p in w.images)
    d = np.array([0.1, 0.5, 0.9, 0.2, 1.5])
    fa_i, fr_i = worst_indices(d, np.full(5, 1.0), np.array([False, False, True, True, True]), 5)
    assert fa_i.tolist() == [0, 1] and fr_i.tolist() == [4]


def test_trainer_evaluates_several_benchmarks_in_memory_decoding_once(bench, tmp_path):
    folder, pairs_file, pack_path = bench
    cfp = write_cfp(tmp_path / "cfp")
    sets = [load_benchmark("lfw", pack_path), load_benchmark("cfp_fp", cfp)]
    caches = {s.name: CropCache() for s in sets}
    first = evaluate_benchmarks(block_embed, sets, image_size=SIZE, caches=caches)
    again = evaluate_benchmarks(block_embed, sets, image_size=SIZE, caches=caches)
    assert [r.name for r in first] == ["lfw", "cfp_fp"]
    assert caches["lfw"].decoded == 160 and caches["cfp_fp"].decoded == 41  # 20 frontal, 21 profile
    assert first[0].report.result.accuracy_mean == again[0].report.result.accuracy_mean
    scalars = benchmark_scalars(first)
    acc = ev.benchmark_tag(ev.BENCH_ACCURACY, "cfp_fp")
    assert scalars[acc] == first[1].report.result.accuracy_mean
    assert ev.benchmark_tag(ev.BENCH_AUC, "lfw") in scalars


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo, write_model_info

    out = tmp_path_factory.mktemp("model")
    model = create_model("small", embedding_size=8, image_size=SIZE, width=4)
    model.save(out / "model.keras")
    write_model_info(out, ModelInfo("small", 8, SIZE, "per_image"))
    return out


def read_events(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    reader = ev.LogdirReader(logdir.parent)
    reader.poll(rescan=True)
    run = reader.runs[logdir.name]
    return {t: list(zip(s.steps, s.values, strict=True)) for t, s in run.series.items()}


def test_cli_table_json_events_and_contact_sheet(bench, small_model, tmp_path):
    folder, pairs_file, pack_path = bench
    cfp = write_cfp(tmp_path / "cfp")
    logdir = tmp_path / "logs" / "run"
    png = tmp_path / "worst.png"
    args = ["validate", str(small_model), "--benchmark", f"lfw={pack_path}",
            "--benchmark", f"cfp_fp={cfp}", "--events-dir", str(logdir)]  # fmt: skip
    result = runner.invoke(app, [*args, "--json", "--worst", "2", "--worst-png", str(png)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output[result.output.index("{") :])
    names = [b["name"] for b in data["benchmarks"]]
    assert names == ["lfw", "cfp_fp"]
    lfw, cfp_fp = data["benchmarks"]
    assert lfw["pairs_used"] == 80 and cfp_fp["pairs_used"] == 40 and lfw["nrof_folds"] == 10
    assert set(lfw) >= {"accuracy", "val", "far", "auc", "eer", "threshold"}
    assert len(data["worst"]["lfw"]) <= 4 and all("#" in w["image1"] for w in data["worst"]["lfw"])
    for name in names:
        with Image.open(tmp_path / f"worst_{name}.png") as im:
            assert im.width == 2 * 96 + 260 and im.height > 96
    scalars = read_events(logdir)
    acc = scalars[ev.benchmark_tag(ev.BENCH_ACCURACY, "cfp_fp")]
    assert acc == [(0, pytest.approx(cfp_fp["accuracy"]))]
    # The table names both benchmarks; the same figures with the same pairs from the folder.
    table = runner.invoke(app, [*args[:3], f"lfw={folder}", "--no-embedding-cache"])
    assert table.exit_code == 0, table.output
    assert "LFW" in table.output and f"{lfw['accuracy']:.4f}" in table.output


def test_cli_pack_as_the_data_argument_and_unsafe_pack_exit_code(bench, small_model, tmp_path):
    import pickle

    from tests.data.test_verification_pack import RunsCode

    _, _, pack_path = bench
    result = runner.invoke(app, ["validate", str(pack_path), str(small_model), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["benchmarks"][0]["name"] == "lfw"
    marker = tmp_path / "ran"
    evil = tmp_path / "cfp_fp.bin"
    evil.write_bytes(pickle.dumps(([b"x", RunsCode(marker)], [True])))
    result = runner.invoke(app, ["validate", str(evil), str(small_model)])
    assert result.exit_code == 3 and not marker.exists()
    assert "refused as unsafe" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["validate", str(small_model), "--benchmark", "ijbc=x"])
    assert result.exit_code == 3 and "known: lfw, cfp_ff, cfp_fp" in result.output


def test_cli_all_checkpoints_over_steps_and_the_embedding_cache(bench, tmp_path):
    from tests.models.runs import write_run

    _, _, pack_path = bench
    run = tmp_path / "models" / "run1"
    write_run(run, steps=(100, 200))
    logdir = tmp_path / "logs" / "run1"
    args = ["validate", str(run), "--all-checkpoints", "--benchmark", f"lfw={pack_path}",
            "--events-dir", str(logdir), "--json"]  # fmt: skip
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    data = json.loads(first.output[first.output.index("{") :])
    steps = [c["step"] for c in data["checkpoints"]]
    assert steps == [100, 200]
    assert [c["images_embedded"] for c in data["checkpoints"]] == [160, 160]
    again = runner.invoke(app, args)
    redo = json.loads(again.output[again.output.index("{") :])["checkpoints"]
    assert [(c["images_embedded"], c["images_reused"]) for c in redo] == [(0, 160), (0, 160)]
    assert [c["benchmarks"][0]["accuracy"] for c in redo] == [
        c["benchmarks"][0]["accuracy"] for c in data["checkpoints"]
    ]
    points = read_events(logdir)[ev.benchmark_tag(ev.BENCH_ACCURACY, "lfw")]
    assert sorted({s for s, _ in points}) == [100, 200]


def test_the_board_draws_one_accuracy_line_per_benchmark():
    from tui.panels import is_facenet_tag, panels_for

    tags = {ev.benchmark_tag(ev.BENCH_ACCURACY, n) for n in ("lfw", "cfp_fp")}
    panel = next(p for p in panels_for(tags) if p.key == "benchmarks")
    run = ev.RunState("run", Path("run"))
    for tag in tags:
        run.series[tag] = ev.ScalarSeries()
    assert sorted(label for _, label in panel.traces[0].resolve(run)) == [
        "cfp_fp accuracy",
        "lfw accuracy",
    ]
    assert all(is_facenet_tag(t) for t in tags)
    assert "benchmarks" not in {p.key for p in panels_for({ev.LOSS})}
