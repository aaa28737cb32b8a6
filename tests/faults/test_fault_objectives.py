"""Bad images and kills meet every objective alike: the trainer, not the loss, handles them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.train.registry import loss_names
from tests.conftest import make_image_tree


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """5 people x 4 photos, plus a JPEG cut in half and a PNG with a header and no pixels."""
    people = {f"id{i}": 4 for i in range(5)}
    data = make_image_tree(tmp_path_factory.mktemp("faults") / "ds", people, size=20)
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    truncated = data / "id1" / "id1_cut.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    headless = data / "id2" / "id2_broken.png"
    headless.write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    return {"data": data, "truncated": truncated, "headless": headless}


@pytest.mark.parametrize("loss", loss_names())
def test_unreadable_images_are_named_and_skipped_under_every_loss(
    photos: dict[str, Path], tmp_path: Path, loss: str
) -> None:
    # 22 listed images; a classifier epoch of 4 x 6 rows and a triplet round of all 5 people
    # both meet the two broken files in the first epoch.
    result = CliRunner().invoke(app, [
        "train", "--data-dir", str(photos["data"]), "--loss", loss,
        "--logs-base-dir", str(tmp_path / "logs"), "--models-base-dir", str(tmp_path / "models"),
        "--model-def", "small", "--image-size", "16", "--embedding-size", "8",
        "--batch-size", "6", "--people-per-batch", "5", "--images-per-person", "5",
        "--epoch-size", "4", "--max-nrof-epochs", "1", "--margin-scale", "8",
    ])  # fmt: skip
    out = result.output.replace("\n", "")  # the console wraps long lines off a terminal
    assert result.exit_code == 0, result.output[-3000:]
    assert "Traceback" not in out and "internal error" not in out
    for name in ("truncated", "headless"):
        assert f"{photos[name]}: unreadable image, skipped from now on" in out, result.output
    # What the run found, said when it starts.
    assert f"{photos['data']}: 5 identities, 22 images" in out
    assert "finished at step 4" in out
