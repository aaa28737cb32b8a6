"""Loss on hand-made embeddings, the schedule file and the optimizers' constants."""

from __future__ import annotations

import numpy as np
import pytest

from facenet_cli.errors import InputError
from facenet_cli.train.schedule import (
    STOP,
    learning_rate,
    learning_rate_from_schedule,
    read_schedule_file,
)


def test_triplet_loss_on_hand_made_embeddings():
    import tensorflow as tf

    from facenet_cli.train.loss import split_triplets, triplet_loss, triplet_stats

    # Triplet 1: d(a,p) = 0, d(a,n) = 2  -> max(0 - 2 + 0.2, 0) = 0
    # Triplet 2: d(a,p) = 2, d(a,n) = 0  -> 2 - 0 + 0.2 = 2.2
    # Triplet 3: d(a,p) = 0.5, d(a,n) = 0.6 -> 0.5 - 0.6 + 0.2 = 0.1
    s = np.sqrt
    rows = np.array(
        [
            [1, 0],
            [1, 0],
            [0, 1],
            [1, 0],
            [0, 1],
            [1, 0],
            [1, 0],
            [1 - 0.25, s(1 - 0.75**2)],
            [1 - 0.3, -s(1 - 0.7**2)],
        ],
        dtype=np.float32,
    )
    a, p, n = split_triplets(tf.constant(rows))
    loss = float(triplet_loss(a, p, n, 0.2))
    assert loss == pytest.approx((0.0 + 2.2 + 0.1) / 3, abs=1e-5)
    stats = {k: float(v) for k, v in triplet_stats(a, p, n, 0.2).items()}
    assert stats["active_fraction"] == pytest.approx(2 / 3)
    assert stats["pos_dist"] == pytest.approx((0 + 2 + 0.5) / 3, abs=1e-5)
    assert stats["neg_dist"] == pytest.approx((2 + 0 + 0.6) / 3, abs=1e-5)


def test_schedule_file_original_format(tmp_path):
    path = tmp_path / "lr.txt"
    path.write_text("# Learning rate schedule\n0:  0.1\n65: 0.01  # decay\n\n77: 0.001\n1000: -\n")
    schedule = read_schedule_file(path)
    assert schedule == [(0, 0.1), (65, 0.01), (77, 0.001), (1000, STOP)]
    assert learning_rate_from_schedule(schedule, 0) == 0.1
    assert learning_rate_from_schedule(schedule, 64) == 0.1
    assert learning_rate_from_schedule(schedule, 65) == 0.01
    assert learning_rate_from_schedule(schedule, 999) == 0.001
    assert learning_rate_from_schedule(schedule, 1000) == STOP
    path.write_text("0: 0.1\n5: -1\n")
    assert learning_rate_from_schedule(read_schedule_file(path), 7) == STOP


def test_schedule_file_errors_name_the_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("0: 0.1\n10 0.01\n")
    with pytest.raises(InputError, match=r"bad.txt:2:"):
        read_schedule_file(path)
    with pytest.raises(InputError, match="cannot read"):
        read_schedule_file(tmp_path / "missing.txt")


def test_staircase_decay():
    kw = dict(base=0.1, decay_epochs=2, decay_factor=0.5, epoch_size=10)
    assert learning_rate(0, 0, **kw) == 0.1
    assert learning_rate(19, 1, **kw) == 0.1
    assert learning_rate(20, 2, **kw) == pytest.approx(0.05)
    assert learning_rate(45, 4, **kw) == pytest.approx(0.025)
    with pytest.raises(InputError):
        learning_rate(0, 0, base=0.0, decay_epochs=1, decay_factor=1.0, epoch_size=1)


@pytest.mark.parametrize("name", ["ADAGRAD", "ADADELTA", "ADAM", "RMSPROP", "MOM", "adam"])
def test_optimizers(name):
    from facenet_cli.train.optimizers import create_optimizer

    opt = create_optimizer(name, 0.05)
    assert float(opt.learning_rate) == pytest.approx(0.05)
    if name == "ADAM":
        assert opt.epsilon == 0.1
    if name == "MOM":
        assert opt.nesterov and opt.momentum == 0.9
    if name == "ADAGRAD":
        assert opt.initial_accumulator_value == 0.1


def test_unknown_optimizer():
    from facenet_cli.train.optimizers import create_optimizer

    with pytest.raises(InputError, match="unknown optimizer"):
        create_optimizer("LAMB", 0.1)
