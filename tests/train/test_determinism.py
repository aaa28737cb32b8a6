"""``deterministic``: the same weights for the seed whatever cores the process may use.

Each run is its own process: the thread count is fixed when TensorFlow starts, and a process
pinned to one core is what a smaller machine looks like to TensorFlow.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_image_tree

# Trains a tiny run (argv: data dir, output dir, "one" to pin to one core, "det" for the
# setting) and prints a digest of every float variable of its last checkpoint.
TRAIN_AND_DIGEST = """
import hashlib, os, sys
from pathlib import Path
data, out, cores, mode = sys.argv[1:5]
if cores == "one":
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import numpy as np
import tensorflow as tf
from facenet_cli.config import TrainConfig
from facenet_cli.train.reporting import NullReporter
from facenet_cli.train.run import run_train

config = TrainConfig(
    logs_base_dir=Path(out) / "logs", models_base_dir=Path(out) / "models", data_dir=data,
    model_def="small", image_size=32, embedding_size=16, batch_size=12, people_per_batch=4,
    images_per_person=4, epoch_size=4, max_nrof_epochs=1, alpha=0.5, seed=5,
    random_flip=True, deterministic=mode == "det",
)
result = run_train(config, NullReporter())
reader = tf.train.load_checkpoint(str(result.run_dir))
digest = hashlib.sha256()
for name, dtype in sorted(reader.get_variable_to_dtype_map().items()):
    if dtype.is_floating:
        digest.update(name.encode() + np.ascontiguousarray(reader.get_tensor(name)).tobytes())
print("DIGEST", result.step, digest.hexdigest())
"""


def _start(data: Path, out: Path, cores: str, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-c", TRAIN_AND_DIGEST, str(data), str(out), cores, mode],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def _digest(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.startswith("DIGEST ")]
    assert lines, stdout[-2000:]
    return lines[-1]


@pytest.mark.slow  # two training processes side by side: about 50 s on 2 busy cores
@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs a process pinned to fewer cores than the test has",
)
def test_deterministic_training_gives_the_same_weights_on_one_core_and_on_all(tmp_path):
    data = make_image_tree(tmp_path / "ds", {f"id{i}": 5 for i in range(5)}, size=40)
    # Without the setting these two differ (measured on 2 cores: the sums split differently).
    runs = [_start(data, tmp_path / cores, cores, "det") for cores in ("all", "one")]
    all_cores, one_core = (_digest(run) for run in runs)
    assert all_cores.split()[1] == "4"  # the run trained its 4 steps
    assert one_core == all_cores
