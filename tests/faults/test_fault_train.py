"""``facenet train`` killed during a step, during checkpoint writing and during evaluation, then
resumed; a damaged latest checkpoint; a disk that fills up. Real subprocesses on tiny data."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from facenet_cli import events
from facenet_cli.errors import EXIT_IO
from tests.conftest import make_image_tree
from tests.faults.fault_helpers import (
    SLOW_START_S,
    assert_one_line_error,
    cli,
    env,
    run,
    run_python,
    wait_for,
)
from tests.faults.fs import small_tmpfs

# Test-only hooks, installed by running the CLI through ``python -c``: argv[1] picks the fault.
_HOOK = """
import os, signal, sys
mode, at = sys.argv[1], int(sys.argv[2])
sys.argv = ["facenet", *sys.argv[3:]]

def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "save":
    # Killed inside CheckpointManager.save: the data and index are written, the 'checkpoint'
    # state file is not yet updated.
    import tensorflow as tf
    real_record = tf.train.CheckpointManager._record_state
    def record(self, *a, **k):
        step = int(self._checkpoint.step.numpy())
        if step >= at:
            print(f"HOOK killed while saving step {step}", flush=True)
            die()
        return real_record(self, *a, **k)
    tf.train.CheckpointManager._record_state = record
elif mode == "eval":
    # Killed after the first evaluation batch is embedded.
    import facenet_cli.evaluate.pairs_embedding as validate
    real_eval = validate.evaluate_on_pairs
    def evaluate_on_pairs(embed, *a, **k):
        def embed_then_die(images):
            out = embed(images)
            print("HOOK killed during evaluation", flush=True)
            die()
            return out
        return real_eval(embed_then_die, *a, **k)
    validate.evaluate_on_pairs = evaluate_on_pairs
elif mode == "enospc":
    # No mount allowed here: the checkpoint write fails as on a full disk.
    import errno
    from facenet_cli.train import checkpoints
    real_save = checkpoints.TrainingState.save
    def save(self):
        if self.current_step >= at:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.manager.directory))
        return real_save(self)
    checkpoints.TrainingState.save = save
from facenet_cli.cli import main
main()
"""

STARTED = re.compile(r"(?:run|resuming) (\S+) at step (\d+), epoch (\d+)")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from facenet_cli.data.pairs import make_pairs, write_pairs

    root = tmp_path_factory.mktemp("train_faults")
    data = make_image_tree(root / "ds", {f"id{i}": 4 for i in range(5)}, size=20)
    write_pairs(root / "pairs.txt", make_pairs(data, nrof_folds=2, pairs_per_fold=4, seed=1), 2, 4)
    return {"root": root, "data": data, "pairs": root / "pairs.txt"}


def train_args(tiny: dict[str, Path], base: Path, *extra: str) -> list[str]:
    return [
        "train", "--data-dir", str(tiny["data"]), "--logs-base-dir", str(base / "logs"),
        "--models-base-dir", str(base / "models"), "--model-def", "small", "--image-size", "16",
        "--embedding-size", "4", "--batch-size", "6", "--people-per-batch", "3",
        "--images-per-person", "3", "--alpha", "0.5", "--epoch-size", "2",
        "--max-nrof-epochs", "1000", "--lfw-dir", str(tiny["data"]), "--lfw-pairs",
        str(tiny["pairs"]), "--lfw-nrof-folds", "2", "--keep-checkpoints", "3", *extra,
    ]  # fmt: skip


def resume_args(run_dir: Path, base: Path, *extra: str) -> list[str]:
    return ["train", "--resume", str(run_dir), "--logs-base-dir", str(base / "logs"), *extra]


def checkpoint_steps(run_dir: Path) -> list[int]:
    return sorted(int(p.name[5:-6]) for p in run_dir.glob("ckpt-*.index"))


def recorded_step(run_dir: Path) -> int | None:
    """The step of the checkpoint the 'checkpoint' state file points at."""
    import tensorflow as tf

    prefix = tf.train.latest_checkpoint(str(run_dir))
    return int(prefix.rsplit("-", 1)[1]) if prefix else None


def start_step(output: str) -> int:
    match = STARTED.search(output)
    assert match, output[-2000:]
    return int(match.group(2))


def hooked(mode: str, at: int, args: list[str]) -> list[str]:
    return [sys.executable, "-c", _HOOK, mode, str(at), *args]


def board_loss_steps(log_dir: Path) -> list[int]:
    """Steps of the loss curve as ``facenet board`` reads them (a rewind drops stale points)."""
    reader = events.LogdirReader(log_dir.parent)
    reader.poll(rescan=True)
    return [int(s) for s in reader.runs[log_dir.name].series[events.LOSS].steps]


def raw_loss_steps_of(path: Path) -> list[int]:
    """Every loss event of one event file, in file order."""
    from tensorboard.backend.event_processing import event_file_loader

    return [e.step for e in event_file_loader.EventFileLoader(str(path)).Load()
            if any(v.tag == events.LOSS for v in e.summary.value)]  # fmt: skip


def raw_loss_steps(log_dir: Path) -> list[int]:
    """Every loss event in every event file of a run, duplicates included."""
    return [s for p in sorted(log_dir.glob("events.out.tfevents.*")) for s in raw_loss_steps_of(p)]


def tensorboard_loss_steps(log_dir: Path) -> list[int]:
    from tensorboard.backend.event_processing import event_accumulator

    guidance = {"scalars": 0, "tensors": 0}
    acc = event_accumulator.EventAccumulator(str(log_dir), size_guidance=guidance)
    acc.Reload()
    if events.LOSS in acc.Tags()["scalars"]:
        return [e.step for e in acc.Scalars(events.LOSS)]
    return [e.step for e in acc.Tensors(events.LOSS)]


@pytest.fixture(scope="module")
def chain(tiny: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One run killed three ways, each time resumed; ends with a clean finish."""
    base = tmp_path_factory.mktemp("chain")
    models = base / "models"

    def run_dir() -> Path:
        (only,) = models.iterdir()
        return only

    # 1. SIGKILL during the steps after the first checkpoint.
    proc = subprocess.Popen(cli(*train_args(tiny, base)), env=env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    assert wait_for(lambda: models.exists() and any(models.glob("*/ckpt-4.index")), proc,
                    SLOW_START_S), proc.communicate()[0][-3000:]  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    out1, _ = proc.communicate(timeout=60)
    saved = recorded_step(run_dir())
    assert saved is not None and saved >= 2, out1[-3000:]

    # 2. SIGKILL inside the next checkpoint write.
    done = run(hooked("save", saved + 1, resume_args(run_dir(), base)))
    out2 = done.stdout + done.stderr
    assert done.returncode == -signal.SIGKILL, out2[-3000:]
    assert start_step(out2) == saved
    assert re.search(r"HOOK killed while saving step (\d+)", out2), out2[-3000:]
    assert recorded_step(run_dir()) == saved, "the half-written checkpoint became the latest"

    # 3. SIGKILL during the evaluation at the end of the next epoch.
    done = run(hooked("eval", 0, resume_args(run_dir(), base)))
    out3 = done.stdout + done.stderr
    assert "HOOK killed during evaluation" in out3, out3[-3000:]
    assert start_step(out3) == saved
    after_eval = recorded_step(run_dir())

    # 4. Resume to a clean finish two epochs on.
    final = after_eval + 4
    done = run(cli(*resume_args(run_dir(), base, "--max-steps", str(final))))
    out4 = done.stdout + done.stderr
    assert done.returncode == 0, out4[-3000:]
    assert start_step(out4) == after_eval
    return {"base": base, "run": run_dir(), "final": final, "log": base / "logs" / run_dir().name,
            "starts": [0, saved, saved, after_eval]}  # fmt: skip


@pytest.mark.slow
def test_killed_runs_resume_with_continuous_steps(chain: dict) -> None:
    run_dir, final, starts = chain["run"], chain["final"], chain["starts"]
    assert recorded_step(run_dir) == final
    assert (chain["log"] / "FINISHED").exists()
    # One event file per process; each continues from the step its process resumed at.
    files = sorted(chain["log"].glob("events.out.tfevents.*"))
    assert len(files) == len(starts)
    lost: set[int] = set()
    for k, path in enumerate(files):
        steps = raw_loss_steps_of(path)
        assert steps == list(range(starts[k] + 1, starts[k] + 1 + len(steps))), (k, steps)
        if k + 1 < len(starts):
            lost |= {s for s in steps if s > starts[k + 1]}  # trained, then lost to the kill
    readers = {"board": board_loss_steps, "tensorboard": tensorboard_loss_steps,
               "files": raw_loss_steps}  # fmt: skip
    for name, read in readers.items():
        steps = read(chain["log"])
        assert set(range(1, final + 1)) <= set(steps), f"{name}: missing steps"
        twice = {s for s, n in Counter(steps).items() if n > 1}
        assert twice <= lost, f"{name}: steps written twice beyond the lost ones: {twice - lost}"
    board = board_loss_steps(chain["log"])
    assert board == sorted(set(board)), "the board keeps one point per step after a resume"


@pytest.mark.slow
def test_every_kept_checkpoint_restores(chain: dict) -> None:
    import tensorflow as tf

    steps = checkpoint_steps(chain["run"])
    assert steps and steps[-1] == chain["final"]
    for step in steps:
        reader = tf.train.load_checkpoint(str(chain["run"] / f"ckpt-{step}"))
        assert reader.get_variable_to_shape_map(), step


@pytest.mark.slow
def test_damaged_latest_checkpoint_falls_back_with_a_warning(chain: dict, tmp_path: Path) -> None:
    base = tmp_path
    run_dir = base / "models" / chain["run"].name
    shutil.copytree(chain["run"], run_dir)
    steps = checkpoint_steps(run_dir)
    latest, previous = steps[-1], steps[-2]
    data = next(run_dir.glob(f"ckpt-{latest}.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    done = run(cli(*resume_args(run_dir, base, "--max-steps", str(latest + 2))))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert start_step(out) == previous
    assert "warning" in out.lower() and f"ckpt-{latest}" in out


# -------------------------------------------------------------------------------- disk full


@pytest.mark.slow
def test_disk_full_during_training_keeps_the_last_checkpoint(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "fs"
    with small_tmpfs(base, "400m") as fs:
        args = train_args(tiny, base)
        models = base / "models"
        if fs is None:
            done = run_python(_HOOK, "enospc", "4", *args)
            full_text = done.stdout + done.stderr
            code = done.returncode
        else:
            proc = subprocess.Popen(cli(*args), env=env(), stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)  # fmt: skip
            assert wait_for(lambda: any(models.glob("*/ckpt-2.index")), proc, SLOW_START_S)
            filler = base / "filler"
            with open(filler, "wb") as fh:
                try:
                    while True:
                        fh.write(b"\0" * 2**20)
                        fh.flush()
                except OSError:
                    pass
            full_text, _ = proc.communicate(timeout=SLOW_START_S)
            code = proc.returncode
        line = assert_one_line_error((code, full_text), EXIT_IO)
        print(f"disk full ({'tmpfs' if fs else 'injected'}): {line}")  # shown by pytest -rP
        assert "No space left on device" in line or "space" in line.lower(), line
        (run_dir,) = models.iterdir()
        kept = recorded_step(run_dir)
        assert kept is not None and kept >= 2
        if fs is not None:
            filler.unlink()
        done = run(cli(*resume_args(run_dir, base, "--max-steps", str(kept + 2))))
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        assert start_step(out) == kept
        assert recorded_step(run_dir) == kept + 2


def test_a_blocked_logs_folder_leaves_no_empty_run_folder(tmp_path: Path) -> None:
    from facenet_cli.errors import StorageError
    from facenet_cli.train.checkpoints import create_run_dirs

    logs = tmp_path / "logs"
    logs.write_text("a file where the logs folder should be")
    with pytest.raises(StorageError, match="cannot create the run's log folder"):
        create_run_dirs(logs, tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []
    name, log_dir, model_dir = create_run_dirs(tmp_path / "logs2", tmp_path / "models")
    assert log_dir.is_dir() and model_dir.is_dir() and model_dir.name == name


def test_a_run_started_with_relative_paths_resumes_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from facenet_cli.config import TrainConfig
    from facenet_cli.train.settings import resolve_config

    monkeypatch.chdir(tmp_path)
    config = resolve_config(TrainConfig(data_dir="a:b", lfw_dir=Path("lfw"),
                                        lfw_pairs=Path("p.txt"), logs_base_dir=Path("logs"),
                                        models_base_dir=Path("models")))  # fmt: skip
    assert config.data_dir == f"{tmp_path / 'a'}:{tmp_path / 'b'}"
    assert config.lfw_dir == tmp_path / "lfw" and config.lfw_pairs == tmp_path / "p.txt"
    assert config.logs_base_dir == tmp_path / "logs"
    assert config.models_base_dir == tmp_path / "models"


def test_every_loss_warns_about_what_it_does_not_read(tmp_path: Path) -> None:
    from facenet_cli.config import TrainConfig
    from facenet_cli.train.settings import read_classes

    for person in ("a", "b"):
        (tmp_path / person / "2019").mkdir(parents=True)
        (tmp_path / person / "1.png").write_bytes(b"\x89PNG")
    (tmp_path / "a" / "notes.txt").write_text("not an image")

    class Warnings:
        def __init__(self) -> None:
            self.lines: list[str] = []

        def warning(self, line: str) -> None:
            self.lines.append(line)

    seen = Warnings()
    classes = read_classes(TrainConfig(data_dir=str(tmp_path), loss="cosface"), seen)  # type: ignore[arg-type]
    assert [c.name for c in classes] == ["a", "b"]
    assert len(seen.lines) == 2
    assert "not images" in seen.lines[0] and "2 folder(s)" in seen.lines[1]
