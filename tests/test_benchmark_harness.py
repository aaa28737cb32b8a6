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
