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
