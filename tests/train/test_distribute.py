"""Distributed training on the CPU: mirrored replicas, two local workers, mixed precision."""

from __future__ import annotations

import json
import os
import re
import socket
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
from facenet_cli.errors import InputError
from facenet_cli.train import distribute
from facenet_cli.train.settings import check_config
from tests.conftest import make_image_tree
from tests.train.test_train_loop import Recorder, scalars, tiny_config

REPO = Path(__file__).resolve().parents[2]
QUIET = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """6 identities x 4 images of 20 px."""
    root = tmp_path_factory.mktemp("tiny")
    return {"data": make_image_tree(root / "ds", {f"id{i}": 4 for i in range(6)}, size=20)}


def test_batches_split_at_triplet_boundaries_and_tf_config_is_checked():
    np.testing.assert_array_equal(distribute.split_bounds(12, 2, unit=3), [0, 6, 12])
    # A short last batch: 3 triplets on 2 replicas -> 2 and 1, never half a triplet.
    np.testing.assert_array_equal(distribute.split_bounds(9, 2, unit=3), [0, 6, 9])
    np.testing.assert_array_equal(distribute.split_bounds(3, 2, unit=3), [0, 3, 3])
    np.testing.assert_array_equal(distribute.split_bounds(5, 2), [0, 3, 5])
    assert distribute.check_global_batch(12, 2) == 6
    # A worker's share of a global batch: its replicas' parts, one run.
    assert distribute.local_span(12, 2, [1], unit=3) == (6, 12)
    assert distribute.local_span(90, 4, [2, 3], unit=3) == (48, 90)  # 8, 8, 7, 7 triplets
    assert distribute.local_span(9, 2, [0], unit=3) == (0, 6)
    with pytest.raises(ValueError, match="not consecutive"):
        distribute.local_span(12, 4, [0, 2])
    with pytest.raises(InputError, match=r"--batch-size 9 .* 3 x 2 = 6.*use e.g. 6 or 12"):
        distribute.check_global_batch(9, 2)

    with pytest.raises(InputError, match="needs TF_CONFIG"):
        distribute.task_info("multiworker", {})
    with pytest.raises(InputError, match="not valid JSON"):
        distribute.task_info("multiworker", {"TF_CONFIG": "{cluster"})
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    with pytest.raises(InputError, match="not in its cluster"):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": 2}}
        distribute.task_info("multiworker", {"TF_CONFIG": json.dumps(tf_config)})
    roles = [
        distribute.task_info(
            "multiworker",
            {"TF_CONFIG": json.dumps({"cluster": c, "task": {"type": t, "index": i}})},
        )  # fmt: skip
        for c, t, i in [
            (cluster, "worker", 0),
            (cluster, "worker", 1),
            ({"chief": ["h:1"], **cluster}, "worker", 0),
            ({"chief": ["h:1"], **cluster}, "chief", 0),
        ]  # fmt: skip
    ]
    assert [r.is_chief for r in roles] == [True, False, False, True]
    assert [r.nrof_workers for r in roles] == [2, 2, 3, 3]
    assert distribute.task_info("one").is_chief


def test_unknown_strategy_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["train", "--strategy", "ring", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "'ring' is not one of auto, one, mirrored, multiworker" in result.output
    # The library checks the same for configs built in code.
    with pytest.raises(InputError, match="--strategy 'ring'"):
        check_config(TrainConfig(data_dir=str(tmp_path), strategy="ring"))


# The host split into two logical CPUs must happen before TensorFlow initialises its devices,
# hence a fresh interpreter. Both runs share the process (the same data, seeds and batch). The
# classifier runs get a process of their own: a second mirrored training in one process reuses
# the first one's collective keys (a TensorFlow limit; the command trains once a process).
MIRRORED_SCRIPT = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from pathlib import Path
from facenet_cli.errors import InputError
from facenet_cli.train.run import run_train
from tests.train.test_train_loop import Recorder, tiny_config
from tests.conftest import make_image_tree
base, loss = Path(sys.argv[1]), sys.argv[2]
tiny = {"data": make_image_tree(base / "ds", {f"id{i}": 4 for i in range(6)}, size=20)}
out = {}
for strategy in ("mirrored", "one"):
    rec = Recorder()
    if loss == "triplet":
        config = tiny_config(tiny, base / strategy, strategy=strategy, batch_size=12,
                             images_per_person=4, epoch_size=4, max_steps=4, weight_decay=1e-4)
    else:  # the classifier step, CosFace over the six people
        config = tiny_config(tiny, base / strategy, strategy=strategy, loss=loss, batch_size=8,
                             epoch_size=4, max_steps=4, optimizer="ADAM", learning_rate=0.01,
                             weight_decay=1e-4, margin_scale=16.0)
    run_train(config, rec)
    out[strategy] = [[s.loss, s.triplets] for s in rec.steps]
    out[strategy + "_messages"] = rec.messages
try:
    run_train(tiny_config(tiny, base / "odd", strategy="mirrored", batch_size=9), Recorder())
except InputError as exc:
    out["odd"] = str(exc)
print(json.dumps(out))
"""


def _mirrored(tmp_path: Path, loss: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(tmp_path / loss), loss], cwd=REPO,
        env={**os.environ, **QUIET}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_mirrored_on_two_cpus_matches_one_device(tmp_path):
    out = _mirrored(tmp_path, "triplet")
    assert "mirrored strategy: 2 replicas on 1 worker(s), 6 images per replica" in \
        out["mirrored_messages"]  # fmt: skip
    mirrored, one = np.array(out["mirrored"]), np.array(out["one"])
    assert len(mirrored) == len(one) == 4
    # The same triplets selected (embeddings all-gathered in order), the same losses. Only
    # float32 summation order differs: the all-reduced sum of the two replicas' gradients,
    # and synchronised batch norm's E[x^2] - E[x]^2 against a two-pass variance. Those start
    # near 1e-6 relative and Adagrad at lr 0.1 amplifies them step by step (measured: 3e-6 at
    # step 1, under 3e-4 by step 4). An error of method moves even the first step by far
    # more: per-replica batch-norm statistics gave 0.039 against 0.729 there.
    np.testing.assert_array_equal(mirrored[:, 1], one[:, 1])
    np.testing.assert_allclose(mirrored[0, 0], one[0, 0], rtol=1e-4)
    np.testing.assert_allclose(mirrored[:, 0], one[:, 0], rtol=2e-3)
    assert "3 x 2 = 6" in out["odd"]
    # The classifier step: each replica's share of the batch's mean loss, all-reduced, and one
    # set of weights: the same losses as one device, up to the summation order (measured:
    # 2e-6 relative at step 1, 6e-4 by step 4 under Adam).
    out = _mirrored(tmp_path, "cosface")
    assert "mirrored strategy: 2 replicas on 1 worker(s), 4 images per replica" in \
        out["mirrored_messages"]  # fmt: skip
    assert all(triplets is None for _, triplets in out["mirrored"])  # a classifier has none
    cls_mirrored = np.array([loss for loss, _ in out["mirrored"]])
    cls_one = np.array([loss for loss, _ in out["one"]])
    assert len(cls_mirrored) == len(cls_one) == 4 and np.all(np.isfinite(cls_mirrored))
    np.testing.assert_allclose(cls_mirrored[0], cls_one[0], rtol=1e-4)
    np.testing.assert_allclose(cls_mirrored, cls_one, rtol=2e-3)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _run_workers(tiny, base: Path, extra: list[str]) -> list[subprocess.CompletedProcess]:
    """Two workers of one cluster on loopback ports, each a ``facenet train`` process.

    Output goes to files (a full pipe would stall a worker, and its peer with it); when one
    worker fails the other, left waiting for it in a collective, is stopped.
    """
    from tests.train.test_train_loop import cli_args

    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    scratch = base / "scratch"
    scratch.mkdir(exist_ok=True)
    args = cli_args(tiny, base, "--strategy", "multiworker", "--epoch-size", "2", *extra)
    procs, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, **QUIET, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(scratch)}
        log = base / f"worker{index}-{len(list(base.glob('worker*.log')))}.log"
        logs.append(log)
        with log.open("w") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "facenet_cli.cli", *args],
                                          cwd=REPO, env=env, stdout=out,
                                          stderr=subprocess.STDOUT))  # fmt: skip
    deadline = time.monotonic() + 400
    try:
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.5)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    return [subprocess.CompletedProcess(p.args, p.returncode, "", log.read_text())
            for p, log in zip(procs, logs, strict=True)]  # fmt: skip


@pytest.mark.slow
def test_two_local_workers_train_checkpoint_once_and_resume(tiny, tmp_path):
    first = _run_workers(tiny, tmp_path, ["--max-steps", "3", "--max-nrof-epochs", "5"])
    assert [r.returncode for r in first] == [0, 0], [r.stderr[-2000:] for r in first]
    # Only the chief (worker 0) keeps anything: one run, its checkpoints and its events.
    (run,) = (tmp_path / "models").iterdir()
    (log,) = (tmp_path / "logs").iterdir()
    assert run.name == log.name
    assert sorted(p.name for p in run.glob("ckpt-*.index")) == ["ckpt-2.index", "ckpt-3.index"]
    assert (run / "export" / "model.json").is_file()
    assert len(list(log.glob("events.out.tfevents.*"))) == 1
    assert [s for s, _ in scalars(log)[events.LOSS]] == [1, 2, 3]
    assert list((tmp_path / "scratch").iterdir()) == []  # the other worker cleaned up
    assert "2 replicas on 2 worker(s), 3 images per replica" in first[1].stderr
    # Each worker decodes only its replica's rows of every global batch: together, each once.
    counts = []
    for worker, r in enumerate(first):
        found = re.search(rf"worker {worker}: decoded (\d+) of the (\d+) images", r.stderr)
        assert found, r.stderr[-2000:]
        counts.append((int(found[1]), int(found[2])))
    (mine0, total0), (mine1, total1) = counts
    assert total0 == total1 > 0 and mine0 + mine1 == total0 and 0 < mine0 < total0

    resumed = _run_workers(tiny, tmp_path, ["--resume", str(run), "--max-steps", "5"])
    assert [r.returncode for r in resumed] == [0, 0], [r.stderr[-2000:] for r in resumed]
    assert [p.name for p in (tmp_path / "models").iterdir()] == [run.name]
    assert {"ckpt-4.index", "ckpt-5.index"} <= {p.name for p in run.glob("ckpt-*.index")}
    assert [s for s, _ in scalars(log)[events.LOSS]] == [1, 2, 3, 4, 5]
    assert all("finished at step 5" in r.stderr for r in resumed)


def test_mixed_precision_on_cpu_trains_and_logs_the_loss_scale(tiny, tmp_path, monkeypatch):
    import tensorflow as tf

    from facenet_cli.models.sidecar import ModelInfo
    from facenet_cli.train.graph import TrainingGraph
    from facenet_cli.train.objectives.triplet import TripletObjective
    from facenet_cli.train.run import run_train

    # The CPU policy: bfloat16 compute, no loss scaling needed (float32's exponent range), so
    # the logged scale is 1.0.
    rec = Recorder()
    result = run_train(tiny_config(tiny, tmp_path, mixed_precision=True, max_steps=3), rec)
    assert result.step == 3 and all(np.isfinite(s.loss) for s in rec.steps)
    assert scalars(result.log_dir)[events.LOSS_SCALE] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    config = tiny_config(tiny, tmp_path, mixed_precision=True)
    info = ModelInfo("small", 8, 16, "per_image")
    graph = TrainingGraph(config, info, TripletObjective(config, Recorder()))
    assert graph.model.layers[1].compute_dtype == "bfloat16"
    assert graph.model.trainable_variables[0].dtype == "float32"

    # The GPU policy's code path (float16 + dynamic loss scaling) also runs on a CPU.
    monkeypatch.setattr(distribute, "mixed_precision_policy", lambda has_gpu: "mixed_float16")
    graph = TrainingGraph(config, info, TripletObjective(config, Recorder()))
    assert graph.model.layers[1].compute_dtype == "float16"
    images = tf.random.stateless_normal((6, 16, 16, 3), seed=(1, 2))
    outputs = graph.objective.train_step(images, tf.constant(0, tf.int64))
    assert np.isfinite(float(outputs["loss"]))
    # Keras starts at 2**15; gradients that overflow float16 skip the step and halve it.
    assert float(outputs["loss_scale"]) in (2.0**15, 2.0**14)
    for step in range(1, 4):
        outputs = graph.objective.train_step(images, tf.constant(step, tf.int64))
    assert np.isfinite(float(outputs["loss"]))
    assert all(np.isfinite(w).all() for w in graph.model.get_weights())


def test_classifier_with_mixed_precision_on_cpu(tiny, tmp_path):
    from facenet_cli.train.run import run_train

    rec = Recorder()
    config = tiny_config(
        tiny, tmp_path, mixed_precision=True, loss="arcface", max_steps=3, batch_size=6,
        optimizer="ADAM", learning_rate=0.01, margin_scale=16.0,
    )  # fmt: skip
    result = run_train(config, rec)
    assert result.step == 3 and all(np.isfinite(s.loss) and s.loss > 0 for s in rec.steps)
    values = scalars(result.log_dir)
    assert values[events.LOSS_SCALE] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    assert [s for s, _ in values[events.CLS_CROSS_ENTROPY]] == [1, 2, 3]


@pytest.mark.slow
def test_two_workers_drop_an_image_only_one_of_them_failed_to_decode(tmp_path):
    # id0's three files are all sampled whenever id0 is (3 per person), so the broken one is in
    # the first round with probability 4/5 per round, in one worker's share of the batch.
    data = make_image_tree(tmp_path / "ds", {f"id{i}": 3 for i in range(5)}, size=20)
    bad = data / "id0" / "id0_0003.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated")
    runs = _run_workers({"data": data}, tmp_path, ["--max-steps", "3", "--max-nrof-epochs", "5"])
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    for r in runs:
        assert "unreadable image, skipped" in r.stderr and bad.name in r.stderr, r.stderr[-2000:]
        assert "finished at step 3" in r.stderr
