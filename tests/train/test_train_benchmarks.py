"""``facenet train --benchmark NAME=PATH``: the field's benchmarks after each epoch, as events."""

from __future__ import annotations

from pathlib import Path

import pytest

from facenet_cli import events
from facenet_cli.errors import InputError
from tests.conftest import make_image_tree
from tests.train.test_train_loop import Recorder, scalars, tiny, tiny_config

__all__ = ["tiny"]  # the fixture, imported for the tests below


@pytest.fixture(scope="module")
def held_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Other people than the training ones, with an LFW-style pairs file beside them."""
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = make_image_tree(tmp_path_factory.mktemp("held") / "eval",
                           {f"p{i}": 3 for i in range(4)}, size=20, ext=".jpg")  # fmt: skip
    write_pairs(root / "pairs.txt", make_pairs(root, nrof_folds=2, pairs_per_fold=4, seed=2), 2, 4)
    return root / "pairs.txt"


def test_benchmarks_are_evaluated_each_epoch_and_after_a_resume(tiny, held_out, tmp_path):
    from facenet_cli.train.run import run_train

    tag = events.benchmark_tag(events.BENCH_ACCURACY, "lfw")
    rec = Recorder()
    result = run_train(tiny_config(tiny, tmp_path, benchmark=[f"lfw={held_out}"]), rec)
    values = scalars(result.log_dir)[tag]
    assert [step for step, _ in values] == [3, 6]  # after each of the 2 epochs of 3 steps
    assert all(0.0 <= v <= 1.0 for _, v in values)
    assert sum("lfw: accuracy" in m and "on 16 pairs" in m for m in rec.messages) == 2
    # The run's config.toml keeps the benchmark (absolute), so a resumed run goes on with it.
    resumed = run_train(tiny_config(tiny, tmp_path, resume=result.run_dir, max_nrof_epochs=3),
                        Recorder())  # fmt: skip
    assert [step for step, _ in scalars(resumed.log_dir)[tag]] == [3, 6, 9]


def test_a_bad_benchmark_fails_before_the_run_starts(tiny, tmp_path):
    from facenet_cli.train.run import run_train

    for spec, why in (("lfw", "expected NAME=PATH"), ("megaface=x", "megaface"),
                      (f"lfw={tmp_path / 'none.bin'}", "none.bin")):  # fmt: skip
        with pytest.raises(InputError, match=why):
            run_train(tiny_config(tiny, tmp_path, benchmark=[spec]), Recorder())
    assert not (tmp_path / "models").exists()
