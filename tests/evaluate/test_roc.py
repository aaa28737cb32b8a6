"""ROC output: CSV rows, the PNG plot and the terminal plot."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facenet_cli.errors import StorageError
from facenet_cli.evaluate.roc import terminal_roc, write_roc_csv, write_roc_png


def test_csv_round_trip(tmp_path):
    thresholds = np.arange(0, 4, 0.01)
    fpr = np.linspace(0, 1, thresholds.size) ** 2
    tpr = np.sqrt(np.linspace(0, 1, thresholds.size))
    path = write_roc_csv(tmp_path / "sub" / "roc.csv", thresholds, fpr, tpr)
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    assert data.shape == (400, 3)
    np.testing.assert_allclose(data[:, 0], thresholds, atol=1e-6)
    np.testing.assert_allclose(data[:, 1], fpr, rtol=1e-9)
    np.testing.assert_allclose(data[:, 2], tpr, rtol=1e-9)


def test_unwritable_csv_is_a_storage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StorageError, match="cannot write ROC"):
        write_roc_csv(blocker / "roc.csv", [0.0], [0.0], [0.0])


def test_png_draws_the_curve(tmp_path):
    fpr = np.array([0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 1.0, 1.0, 1.0])
    path = write_roc_png(tmp_path / "roc.png", fpr, tpr, auc=1.0, eer=0.0)
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    # The curve's blue runs along the top edge of the plot for a perfect model.
    blue = (rgb[..., 2] > 150) & (rgb[..., 0] < 90)
    assert blue.sum() > 300
    rows = np.flatnonzero(blue.any(axis=1))
    assert rows.min() < 60  # near the top of the plot area


def test_terminal_plot_perfect_and_chance():
    perfect = terminal_roc(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0]), width=20)
    lines = perfect.splitlines()
    assert lines[0].startswith("1.00 |") and lines[0].endswith("*" * 20)
    assert "FPR (log)" in lines[-1]
    chance = terminal_roc(np.linspace(0, 1, 50), np.linspace(0, 1, 50), width=20, height=6)
    grid = [line.split("|", 1)[1] for line in chance.splitlines()[:6]]
    heights = [5 - next(r for r in range(6) if grid[r][c] == "*") for c in range(20)]
    # On a log axis the chance line stays at the bottom until the last decade, then climbs.
    assert heights == sorted(heights)
    assert heights[0] == 0 and heights[12] == 0 and heights[-1] >= 4
