"""The benchmark harness: alternating timing, ratio and BENCHMARKS.md rows."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks.harness import compare, record


def test_ratio_favours_the_faster_side_and_rows_are_appended(tmp_path: Path) -> None:
    result = compare(
        "sleepy",
        lambda: time.sleep(0.001),
        lambda: time.sleep(0.02),
        repeats=3,
        warmup=0,
        units=10,
        unit_name="img",
    )
    assert len(result.ours_s) == len(result.baseline_s) == 3
    assert result.ratio > 2  # 20 ms vs 1 ms: far beyond scheduler noise
    md = tmp_path / "B.md"
    record(result, md)
    record(result, md)
    text = md.read_text()
    assert text.count("| sleepy |") == 2
    assert "img/s" in text


def test_quality_benchmark_builds_every_row_from_the_recipe_file() -> None:
    """The rows ``python -m benchmarks quality`` trains (the data itself is not needed here)."""
    from benchmarks.bench_quality import recipe_options, recipes
    from facenet_cli.config import TrainConfig
    from facenet_cli.train.settings import check_config, resolve_config

    options = recipe_options()
    rows = recipes(4.0, TrainConfig(data_dir="people"))
    assert list(rows) == ["triplet (demo recipe)", "softmax", "arcface", "cosface"]
    for name, config in rows.items():
        check_config(resolve_config(config))
        assert config.loss == ("triplet" if name.startswith("triplet") else name)
    cosface = rows["cosface"]
    assert (cosface.image_size, cosface.flip_fusion) == (options["image_size"], True)
    assert cosface.epoch_size * cosface.max_nrof_epochs == 480  # 4 minutes at 120 steps


def test_openset_benchmark_draw_names_known_people_and_rejects_strangers() -> None:
    import numpy as np

    from benchmarks.bench_openset import KNOWN, PEOPLE, PHOTOS, draw, face_crop

    assert face_crop(np.zeros((250, 250), np.uint8)).shape == (25, 25)
    # Well separated people in 8 dimensions: every row names the known and rejects the rest.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(PEOPLE, 8))
    labels = np.repeat(np.arange(PEOPLE), PHOTOS)
    x = centres[labels] + rng.normal(scale=0.05, size=(len(labels), 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    names = [f"p{i}" for i in range(PEOPLE)]
    for whiten, known_rate in ((False, 0.0), (True, 0.0), (True, 0.95)):
        result = draw(x, labels, names, 0, whiten, known_rate)
        assert result["known"] == 1.0 and result["strangers"] > 0.9, (whiten, result)
        assert result["expected_known"] >= (0.95 if known_rate else 0.0)
    assert KNOWN < PEOPLE
