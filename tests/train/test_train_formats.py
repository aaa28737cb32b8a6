"""Training straight from Netpbm photos: the feeder decodes them; other files are one warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facenet_cli.config import TrainConfig
from tests.train.test_train_loop import Recorder


@pytest.mark.slow
def test_training_reads_pgm_photos_and_warns_once_about_a_text_file(tmp_path: Path) -> None:
    from skimage import data

    from facenet_cli.train.run import run_train

    faces = data.lfw_subset()  # real LFW crops, 25x25 grey
    root = tmp_path / "att"
    for person in range(5):
        folder = root / f"s{person + 1}"
        folder.mkdir(parents=True)
        for k in range(4):
            grey = np.round(faces[person * 4 + k] * 255).astype(np.uint8)
            Image.fromarray(grey).save(folder / f"{k + 1}.pgm")
    (root / "s1" / "info.txt").write_text("subject 1\n")
    rec = Recorder()
    config = TrainConfig(
        logs_base_dir=tmp_path / "logs", models_base_dir=tmp_path / "models",
        data_dir=str(root), model_def="small", image_size=16, embedding_size=8, batch_size=6,
        people_per_batch=5, images_per_person=4, epoch_size=2, max_nrof_epochs=1, seed=1,
    )  # fmt: skip
    result = run_train(config, rec)
    assert result.step == 2
    assert len(rec.warnings) == 1, rec.warnings
    note = rec.warnings[0]
    assert note.startswith("1 file(s)") and str(root / "s1" / "info.txt") in note
