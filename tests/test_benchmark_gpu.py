"""``python -m benchmarks gpu --smoke``: the GPU script's code runs at tiny sizes on the CPU."""

from __future__ import annotations

import pytest

from benchmarks import bench_gpu
from benchmarks.__main__ import main
from benchmarks.harness import BENCHMARKS_MD


# Several TensorFlow graphs are built, traced and XLA-compiled: 40 s on the 2-core host at
# load 5, two minutes and more at load 10-20.
@pytest.mark.slow
def test_gpu_benchmark_smoke_prints_every_row_and_records_nothing(capsys) -> None:
    before = BENCHMARKS_MD.read_bytes()
    assert main(["gpu", "--smoke"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| benchmark |") :].splitlines()[2:]
    # One row per training variant, then selection, pipeline, align and validation.
    assert len(table) == len(bench_gpu.VARIANTS) + 4, table
    for label in bench_gpu.VARIANTS:
        assert any(f", {label} vs fp32," in row for row in table), label
    for part in ("selection round", "pipeline efficiency", "align:", "embedding throughput"):
        assert any(part in row for row in table), part
    # Every row has a finite, positive ratio.
    for row in table:
        ratio = float(row.split(" | ")[3].rstrip("x"))
        assert 0 < ratio < float("inf")
    assert BENCHMARKS_MD.read_bytes() == before
