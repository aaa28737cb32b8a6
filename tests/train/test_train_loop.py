"""Short CPU runs of the training loop on tiny data (16 px images, a tiny model, few steps)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from facenet_cli import events
from facenet_cli.cli import app
from facenet_cli.config import TrainConfig
from facenet_cli.errors import InputError, TrainingDiverged
from tests.conftest import make_image_tree

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    """A reporter that keeps everything it is told."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.warnings: list[str] = []
        self.steps: list = []
        self.evaluations: list = []
        self.started: dict = {}

    def start(self, **kwargs) -> None:
        self.started = kwargs

    def message(self, text: str) -> None:
        self.messages.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def epoch(self, epoch: int, step_in_epoch: int) -> None:
        pass

    def step(self, report) -> None:
        self.steps.append(report)

    def evaluation(self, epoch: int, step: int, metrics: dict) -> None:
        self.evaluations.append((epoch, step, metrics))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """6 identities x 4 images + a singleton class, and a pairs file over the same images."""
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = tmp_path_factory.mktemp("tiny")
    data = make_image_tree(root / "ds", {f"id{i}": 4 for i in range(6)} | {"single": 1}, size=20)
    pairs = make_pairs(data, nrof_folds=2, pairs_per_fold=6, seed=1)
    write_pairs(root / "pairs.txt", pairs, 2, 6)
    return {"root": root, "data": data, "pairs": root / "pairs.txt"}


def tiny_config(tiny, base: Path, **kw) -> TrainConfig:
    settings = dict(
        logs_base_dir=base / "logs", models_base_dir=base / "models", data_dir=str(tiny["data"]),
        model_def="small", image_size=16, embedding_size=8, batch_size=6, people_per_batch=4,
        images_per_person=3, epoch_size=3, max_nrof_epochs=2, alpha=0.5, seed=3,
    )  # fmt: skip
    settings.update(kw)
    return TrainConfig(**settings)


def cli_args(tiny, base: Path, *extra: str) -> list[str]:
    return [
        "train", "--data-dir", str(tiny["data"]), "--logs-base-dir", str(base / "logs"),
        "--models-base-dir", str(base / "models"), "--model-def", "small", "--image-size", "16",
        "--embedding-size", "8", "--batch-size", "6", "--people-per-batch", "4",
        "--images-per-person", "3", "--alpha", "0.5", *extra,
    ]  # fmt: skip


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar through TensorBoard's own reader."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(
        str(log_dir), size_guidance={"scalars": 0, "tensors": 0}
    )
    acc.Reload()
    out: dict[str, list[tuple[int, float]]] = {}
    for tag in acc.Tags()["tensors"]:
        out[tag] = [(e.step, float(np.asarray(_tensor_value(e.tensor_proto)))) for e in
                    acc.Tensors(tag)]  # fmt: skip
    for tag in acc.Tags()["scalars"]:
        out[tag] = [(e.step, e.value) for e in acc.Scalars(tag)]
    return out


def _tensor_value(proto):
    from tensorboard.util import tensor_util

    return tensor_util.make_ndarray(proto)


@pytest.mark.slow
def test_run_writes_events_checkpoints_export_and_resumes(tiny, tmp_path):
    from facenet_cli.train.run import run_train

    rec = Recorder()
    config = tiny_config(tiny, tmp_path, lfw_dir=tiny["data"], lfw_pairs=tiny["pairs"],
                         lfw_nrof_folds=2, max_steps=5, max_nrof_epochs=3)  # fmt: skip
    result = run_train(config, rec)
    assert result.step == 5 and result.epoch == 1
    assert any("dropped 1 of 7 classes" in m for m in rec.warnings)
    assert [s.step for s in rec.steps] == [1, 2, 3, 4, 5]
    assert all(np.isfinite(s.loss) for s in rec.steps)
    # One evaluation after epoch 0 (step 3); max_steps stops mid-epoch 1.
    assert [(e, s) for e, s, _ in rec.evaluations] == [(1, 3)]
    run = result.run_dir
    assert (run / "config.toml").is_file() and (run / "model.json").is_file()
    assert "tensorflow" in (run / "revision.txt").read_text()
    assert sorted(p.name for p in run.glob("ckpt-*.index")) == ["ckpt-3.index", "ckpt-5.index"]
    assert (result.log_dir / "FINISHED").read_text().startswith("max_steps")
    assert (result.export_dir / "model.json").is_file()

    tags = scalars(result.log_dir)
    for tag in (*events.TRAIN_TAGS, *events.LFW_TAGS, events.HOST_RSS_MB):
        assert tag in tags, f"missing {tag}"
    assert [s for s, _ in tags[events.LOSS]] == [1, 2, 3, 4, 5]
    assert [s for s, _ in tags[events.LFW_ACCURACY]] == [3]
    np.testing.assert_allclose([v for _, v in tags[events.LOSS]], [s.loss for s in rec.steps],
                               rtol=1e-6)  # fmt: skip
    known = {v for n in dir(events) if n.isupper() and isinstance(v := getattr(events, n), str)}
    assert {t.split("/GPU:")[0] for t in tags} <= known

    # The same seed gives the same first losses.
    rec2 = Recorder()
    again = run_train(tiny_config(tiny, tmp_path / "again", max_steps=2), rec2)
    assert again.step == 2
    np.testing.assert_allclose([s.loss for s in rec2.steps], [s.loss for s in rec.steps[:2]],
                               rtol=1e-5)  # fmt: skip

    # --resume continues at the exact step, in the same run, with a longer run allowed.
    rec3 = Recorder()
    resumed = run_train(TrainConfig(resume=run, models_base_dir=tmp_path / "models",
                                    max_steps=7), rec3)  # fmt: skip
    assert resumed.run_dir == run and resumed.step == 7
    assert rec3.started["resumed"] and rec3.started["step"] == 5
    assert [s.step for s in rec3.steps] == [6, 7]
    assert [s for s, _ in scalars(result.log_dir)[events.LOSS]] == [1, 2, 3, 4, 5, 6, 7]


def test_batch_size_must_be_a_multiple_of_three(tiny, tmp_path):
    result = CliRunner().invoke(app, cli_args(tiny, tmp_path, "--batch-size", "10"))
    assert result.exit_code == 3
    assert "not a multiple of 3" in result.output
    assert not (tmp_path / "models").exists()


def test_too_few_classes_is_a_clear_error_before_training(tiny, tmp_path):
    from facenet_cli.train.run import run_train

    with pytest.raises(InputError, match="6 classes with 2 or more images.*people-per-batch is 45"):
        run_train(tiny_config(tiny, tmp_path, people_per_batch=45), Recorder())
    assert not (tmp_path / "models").exists()


def test_nan_guard_keeps_the_last_good_checkpoint(tiny, tmp_path):
    from facenet_cli.train.checkpoints import latest_checkpoint
    from facenet_cli.train.run import run_train

    schedule = tmp_path / "lr.txt"
    schedule.write_text("0: 0.01\n1: 1e35\n")
    config = tiny_config(tiny, tmp_path, learning_rate=-1.0, learning_rate_schedule_file=schedule,
                         optimizer="MOM", epoch_size=2, max_nrof_epochs=4, random_crop=True,
                         random_flip=True)  # fmt: skip
    with pytest.raises(TrainingDiverged, match="NaN|nan|inf") as info:
        run_train(config, Recorder())
    assert info.value.exit_code == 4
    (run,) = (tmp_path / "models").iterdir()
    assert latest_checkpoint(run).endswith("ckpt-2")
    assert "ckpt-2" in str(info.value)
    (log,) = (tmp_path / "logs").iterdir()
    assert (log / "FAILED").read_text().strip()


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.2)


@pytest.mark.slow
def test_sigint_saves_and_sigkill_resumes(tiny, tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [
        sys.executable,
        "-m",
        "facenet_cli.cli",
        *cli_args(tiny, tmp_path, "--epoch-size", "2", "--max-nrof-epochs", "1000"),
    ]
    models = tmp_path / "models"

    def checkpoints() -> list[int]:
        return sorted(int(p.name[5:-6]) for p in models.glob("*/ckpt-*.index"))

    # Ctrl-C: a checkpoint at the current step, the resume command, exit 130.
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(lambda: len(checkpoints()) >= 1, 180, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with: facenet train --resume" in err
    (run,) = models.iterdir()
    saved = checkpoints()[-1]
    assert f"at step {saved}" in err

    # A killed run resumes from its last checkpoint and loses only the steps since.
    resume = [sys.executable, "-m", "facenet_cli.cli", "train", "--resume", str(run)]
    proc = subprocess.Popen(resume, env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    _wait_for(lambda: checkpoints()[-1] >= saved + 4, 180, proc)
    proc.kill()
    proc.wait()
    # The newest checkpoint the run registered (a kill inside the next checkpoint's write can
    # leave its files without its registration; the resume then starts at the one before).
    from facenet_cli.train.checkpoints import latest_checkpoint

    latest = latest_checkpoint(run)
    assert latest is not None
    last = int(Path(latest).name.split("-")[1])
    assert last >= saved + 2

    from facenet_cli.train.run import run_train

    rec = Recorder()
    result = run_train(TrainConfig(resume=run, max_steps=last + 2), rec)
    assert rec.started["step"] == last
    assert [s.step for s in rec.steps] == [last + 1, last + 2]
    assert result.step == last + 2
    loss_steps = [s for s, _ in scalars(tmp_path / "logs" / run.name)[events.LOSS]]
    assert loss_steps[-2:] == [last + 1, last + 2]
    assert set(range(1, last + 3)) <= set(loss_steps)


def test_unreadable_images_are_reported_once_and_skipped(tmp_path):
    from facenet_cli.train.run import run_train

    data = make_image_tree(tmp_path / "ds", {f"id{i}": 4 for i in range(5)}, size=20)
    bad = data / "id0" / "id0_0005.png"
    bad.write_bytes(b"this is not an image")
    rec = Recorder()
    config = TrainConfig(
        logs_base_dir=tmp_path / "logs", models_base_dir=tmp_path / "models",
        data_dir=str(data), model_def="small", image_size=16, embedding_size=8, batch_size=6,
        people_per_batch=5, images_per_person=5, epoch_size=4, max_nrof_epochs=1, seed=1,
    )  # fmt: skip
    result = run_train(config, rec)
    assert result.step == 4
    assert len(rec.warnings) == 1 and str(bad) in rec.warnings[0]


def test_rounds_without_triplets_are_logged_and_resampled(tiny, tmp_path, monkeypatch):
    from facenet_cli.errors import FacenetError
    from facenet_cli.train import trainer as loop
    from facenet_cli.train.run import run_train

    # Semi-hard with a zero margin admits nothing (d(a,p) < d(a,n) < d(a,p)): every round is
    # empty, each is reported, and the run stops with a clear message instead of spinning.
    monkeypatch.setattr(loop, "MAX_EMPTY_ROUNDS", 3)
    rec = Recorder()
    config = tiny_config(tiny, tmp_path, alpha=0.0, triplet_selection="semi-hard")
    with pytest.raises(FacenetError, match="no triplets in 3 selection rounds"):
        run_train(config, rec)
    assert sum("no triplets among" in m for m in rec.messages) == 3
    assert rec.steps == []


def test_resume_with_more_epochs_and_steps_extends_the_run(tiny, tmp_path):
    """Given options are kept even when they equal the defaults (500 epochs here)."""
    first = CliRunner().invoke(
        app, cli_args(tiny, tmp_path, "--epoch-size", "2", "--max-nrof-epochs", "1")
    )
    assert first.exit_code == 0, first.output
    (run,) = (tmp_path / "models").iterdir()
    assert (run / "ckpt-2.index").is_file()
    # The run's own settings stop it at step 2; 500 epochs (the default value, given on
    # purpose) and --max-steps 3 take it one step further.
    resumed = CliRunner().invoke(
        app, ["train", "--resume", str(run), "--max-nrof-epochs", "500", "--max-steps", "3"]
    )
    assert resumed.exit_code == 0, resumed.output
    assert (run / "ckpt-3.index").is_file()
    assert (tmp_path / "logs" / run.name / "FINISHED").read_text().startswith("max_steps at step 3")


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_zero(tiny, tmp_path):
    first = CliRunner().invoke(
        app, cli_args(tiny, tmp_path, "--epoch-size", "2", "--max-nrof-epochs", "1")
    )
    assert first.exit_code == 0, first.output
    (run,) = (tmp_path / "models").iterdir()
    # As a run killed before its first save leaves it: settings, no checkpoint, no export.
    for path in run.iterdir():
        if path.name.startswith(("ckpt-", "checkpoint", "export")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    resumed = CliRunner().invoke(app, ["train", "--resume", str(run), "--image-size", "20"])
    assert resumed.exit_code == 0, resumed.output
    assert "no checkpoint yet; training from step 0" in resumed.output
    assert "--image-size: a resumed run keeps its own settings" in resumed.output
    assert (run / "ckpt-2.index").is_file() and (run / "export").is_dir()


def test_evaluations_after_the_first_read_the_kept_crops(tiny, tmp_path):
    from facenet_cli.data.pairs import read_pairs, resolve_pairs
    from facenet_cli.train.settings import resolve_config
    from facenet_cli.train.trainer import Trainer

    config = resolve_config(tiny_config(tiny, tmp_path, lfw_dir=tiny["data"],
                                        lfw_pairs=tiny["pairs"], lfw_nrof_folds=2))  # fmt: skip
    rec = Recorder()
    with Trainer(config, rec) as trainer:
        trainer.evaluate()
        trainer.evaluate()
        distinct = set(resolve_pairs(tiny["data"], read_pairs(tiny["pairs"])).paths)
        assert trainer.eval_cache.decoded == len(distinct)  # once, not once per evaluation
        assert trainer.eval_cache.nbytes == len(distinct) * 16 * 16 * 3
    first, second = (m for _, _, m in rec.evaluations)
    # The same weights and the same pixels: the same figures.
    assert first.pop(events.TIME_LFW) > 0 and second.pop(events.TIME_LFW) > 0
    assert first == second


@pytest.mark.slow
def test_xla_steps_match_the_plain_graph(tiny, tmp_path):
    import tensorflow as tf

    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.train.graph import TrainingGraph
    from facenet_cli.train.objectives.triplet import TripletObjective

    info = ModelInfo("small", 8, 16, "per_image")
    graphs = []
    for xla in (True, False):
        config = tiny_config(tiny, tmp_path, xla=xla)
        graphs.append(TrainingGraph(config, info, TripletObjective(config, Recorder())))
    assert graphs[0].xla and not graphs[1].xla
    for src, dst in ((graphs[0].model, graphs[1].model),
                     (graphs[0].ema_model, graphs[1].ema_model)):  # fmt: skip
        dst.set_weights(src.get_weights())
    compiled, plain = (g.objective for g in graphs)
    images = tf.random.stateless_uniform((6, 16, 16, 3), seed=(1, 2), maxval=255.0)
    np.testing.assert_allclose(compiled.embed(images), plain.embed(images), atol=1e-5)
    # A full batch runs the XLA program, a round's shorter last batch the plain graph.
    for rows, step in ((6, 0), (3, 1)):
        out = compiled.train_step(images[:rows], tf.constant(step, tf.int64))
        ref = plain.train_step(images[:rows], tf.constant(step, tf.int64))
        assert np.isfinite(float(out["loss"]))
        np.testing.assert_allclose(float(out["loss"]), float(ref["loss"]), rtol=5e-3)
    np.testing.assert_allclose(float(compiled.train_step(images, tf.constant(2, tf.int64))["loss"]),
                               float(plain.train_step(images, tf.constant(2, tf.int64))["loss"]),
                               rtol=5e-3)  # fmt: skip
