"""Every command meets the bad-input corpus: one ``error:`` line naming the input, the documented
exit code (README: 2 usage, 3 bad input, 6 write failure), and no traceback unless ``--debug``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facenet_cli.cli import app
from facenet_cli.errors import EXIT_BAD_INPUT, EXIT_USAGE
from tests.conftest import make_image_tree
from tests.data.bad.make_bad_inputs import UNDECODABLE, BadInputs, make_bad_inputs, make_unreadable
from tests.faults.fault_helpers import assert_one_line_error, cli, run

runner = CliRunner()


def invoke(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [os.fspath(a) if isinstance(a, Path) else str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"exception escaped the CLI: {result.exception!r}\n{result.output}")
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> BadInputs:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image_tree(tmp_path_factory.mktemp("good") / "ds", {f"id{i}": 4 for i in range(5)},
                           size=20)  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, good: Path) -> dict[str, Path]:
    """A tiny valid run directory, and one whose checkpoint is from another model."""
    import tensorflow as tf

    from facenet_cli.models.registry import create_model
    from facenet_cli.models.sidecar import ModelInfo, write_model_info

    base = tmp_path_factory.mktemp("models")
    out = {}
    for name, claimed in (("valid", 4), ("foreign", 8)):
        run_dir = base / name
        run_dir.mkdir()
        # Both hold a 4-wide embedding; the foreign run's model.json says 8.
        model = create_model("small", embedding_size=4, image_size=16)
        ema = create_model("small", embedding_size=4, image_size=16)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, ema_model=ema),
                                             str(run_dir), 2, checkpoint_name="ckpt")  # fmt: skip
        manager.save(checkpoint_number=1)
        write_model_info(run_dir, ModelInfo("small", claimed, 16, "per_image"))
        (run_dir / "config.toml").write_text(
            f'model_def = "small"\nembedding_size = {claimed}\nimage_size = 16\n'
            f'data_dir = "{good}"\nbatch_size = 6\npeople_per_batch = 3\n'
            f"images_per_person = 3\nepoch_size = 2\n"
        )
        out[name] = run_dir
    return out


def test_corpus_images_are_what_they_claim(corpus: BadInputs) -> None:
    from PIL import Image

    for kind, path in corpus.image_files.items():
        try:
            with Image.open(path) as img:
                img.load()
                decoded = True
        except Exception:  # noqa: BLE001 - any failure means undecodable
            decoded = False
        assert decoded == (kind not in UNDECODABLE), kind


# ---------------------------------------------------------------------------------------- align


def test_align_missing_input_dir(tmp_path: Path) -> None:
    assert_one_line_error(invoke("align", tmp_path / "nope", tmp_path / "out"), EXIT_BAD_INPUT,
                          tmp_path / "nope")  # fmt: skip


def test_align_input_is_a_file(corpus: BadInputs, tmp_path: Path) -> None:
    assert_one_line_error(invoke("align", corpus.pairs_bad, tmp_path / "out"), EXIT_BAD_INPUT,
                          corpus.pairs_bad)  # fmt: skip


def test_align_lists_a_dataset_with_symlink_loops(corpus: BadInputs, tmp_path: Path) -> None:
    from facenet_cli.align.pipeline import list_inputs

    rels = [i.rel for i in list_inputs(corpus.loops, tmp_path / "out")]
    assert "loopy/loopy_0001.png" in rels


# ---------------------------------------------------------------------------------------- train


def _train(good: Path, base: Path, *extra: object) -> list[object]:
    return [
        "train", "--data-dir", good, "--logs-base-dir", base / "logs", "--models-base-dir",
        base / "models", "--image-size", "16", "--embedding-size", "4", "--batch-size", "6",
        "--people-per-batch", "3", "--images-per-person", "3", "--epoch-size", "2",
        "--max-steps", "2", *extra,
    ]  # fmt: skip


def test_train_missing_data_dir(tmp_path: Path) -> None:
    assert_one_line_error(invoke(*_train(tmp_path / "nope", tmp_path, "--model-def", "small")),
                          EXIT_BAD_INPUT, tmp_path / "nope")  # fmt: skip


def test_train_data_dir_with_symlink_loops(corpus: BadInputs, tmp_path: Path) -> None:
    # One usable image: an input error about too little data, not a crash on the loops.
    assert_one_line_error(invoke(*_train(corpus.loops, tmp_path, "--model-def", "small")),
                          EXIT_BAD_INPUT)  # fmt: skip


def test_train_model_def_that_does_not_exist(good: Path, tmp_path: Path) -> None:
    done = invoke(*_train(good, tmp_path, "--model-def", "no_such_model"))
    assert_one_line_error(done, {EXIT_USAGE, EXIT_BAD_INPUT}, "no_such_model")


def test_train_model_def_module_that_does_not_exist(good: Path, tmp_path: Path) -> None:
    done = invoke(*_train(good, tmp_path, "--model-def", "no_such_pkg.mod:build"))
    assert_one_line_error(done, {1, EXIT_USAGE, EXIT_BAD_INPUT}, "no_such_pkg")


def test_train_config_file_not_toml(corpus: BadInputs, good: Path, tmp_path: Path) -> None:
    args = _train(good, tmp_path, "--model-def", "small")
    done = invoke(args[0], "--config", corpus.config_not_toml, *args[1:])
    assert_one_line_error(done, EXIT_BAD_INPUT, corpus.config_not_toml)


def test_train_config_file_with_wrong_types(corpus: BadInputs, good: Path, tmp_path: Path) -> None:
    args = _train(good, tmp_path, "--model-def", "small")
    done = invoke(args[0], "--config", corpus.config_bad_types, *args[1:])
    assert_one_line_error(done, {EXIT_USAGE, EXIT_BAD_INPUT}, corpus.config_bad_types)


def test_train_config_file_value_out_of_range(good: Path, tmp_path: Path) -> None:
    config = tmp_path / "range.toml"
    config.write_text("learning_rate = 0.1\nkeep_probability = 1.5\n")
    args = _train(good, tmp_path, "--model-def", "small")
    done = invoke(args[0], "--config", config, *args[1:])
    line = assert_one_line_error(done, EXIT_BAD_INPUT, config)
    assert "keep_probability = 1.5" in line


def test_train_pretrained_checkpoint_from_another_model(
    models: dict[str, Path], good: Path, tmp_path: Path
) -> None:
    # The checkpoint holds a 4-wide embedding; the model trained here is 8 wide.
    done = invoke(*_train(good, tmp_path, "--model-def", "small", "--embedding-size", "8",
                          "--pretrained-model", models["valid"]))  # fmt: skip
    assert_one_line_error(done, EXIT_BAD_INPUT, models["valid"])


def test_train_resume_checkpoint_from_another_model(
    models: dict[str, Path], tmp_path: Path
) -> None:
    done = invoke("train", "--resume", models["foreign"], "--logs-base-dir", tmp_path / "logs",
                  "--max-steps", "3")  # fmt: skip
    line = assert_one_line_error(done, EXIT_BAD_INPUT, models["foreign"])
    assert "ckpt-1" in line or "checkpoint" in line, line


def test_train_resume_missing_run(tmp_path: Path) -> None:
    assert_one_line_error(invoke("train", "--resume", tmp_path / "nope"), EXIT_BAD_INPUT,
                          tmp_path / "nope")  # fmt: skip


def test_train_bad_pairs_file_fails_before_training(
    corpus: BadInputs, good: Path, tmp_path: Path
) -> None:
    done = invoke(*_train(good, tmp_path, "--model-def", "small", "--lfw-dir", good,
                          "--lfw-pairs", corpus.pairs_bad))  # fmt: skip
    assert_one_line_error(done, EXIT_BAD_INPUT, f"{corpus.pairs_bad}:3")
    assert "loss=" not in done[1], "it trained an epoch first (and lost it: no checkpoint)"


# ------------------------------------------------------------------------------------- validate


def test_validate_pairs_file_with_bad_lines(
    corpus: BadInputs, models: dict[str, Path], good: Path
) -> None:
    done = invoke("validate", good, models["valid"], "--lfw-pairs", corpus.pairs_bad)
    assert_one_line_error(done, EXIT_BAD_INPUT, f"{corpus.pairs_bad}:3")


def test_validate_missing_model(corpus: BadInputs, good: Path, tmp_path: Path) -> None:
    done = invoke("validate", good, tmp_path / "nope", "--lfw-pairs", corpus.pairs_bad)
    assert_one_line_error(done, EXIT_BAD_INPUT, tmp_path / "nope")


def test_validate_checkpoint_from_another_model(
    corpus: BadInputs, models: dict[str, Path], good: Path
) -> None:
    done = invoke("validate", good, models["foreign"], "--lfw-pairs", corpus.pairs_bad)
    assert_one_line_error(done, EXIT_BAD_INPUT, models["foreign"])


def test_validate_model_that_is_a_folder_of_images(corpus: BadInputs, good: Path) -> None:
    done = invoke("validate", good, corpus.images / "good", "--lfw-pairs", corpus.pairs_bad)
    assert_one_line_error(done, EXIT_BAD_INPUT, corpus.images / "good")


def test_validate_missing_lfw_dir(
    corpus: BadInputs, models: dict[str, Path], tmp_path: Path
) -> None:
    done = invoke("validate", tmp_path / "nope", models["valid"])
    assert_one_line_error(done, EXIT_BAD_INPUT, tmp_path / "nope")


def test_validate_pairs_over_broken_images(
    corpus: BadInputs, models: dict[str, Path], tmp_path: Path
) -> None:
    # images/<kind>/<kind>_0001.<ext> is an LFW layout: pair every broken image with a good one.
    kinds = sorted(corpus.image_files)
    matched = ["good\t1\t2", "good\t2\t3", "good\t1\t3"] * 2
    lines = ["2\t6", *matched, *[f"{k}\t1\tgood\t1" for k in kinds[:6]]]
    lines += [*matched, *[f"{k}\t1\tgood\t2" for k in kinds[6:12]]]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("\n".join(lines) + "\n")
    code, out = invoke("validate", corpus.images, models["valid"], "--lfw-pairs", pairs,
                       "--lfw-nrof-folds", "2", "--image-size", "16")  # fmt: skip
    # A file that is there but cannot be read is not a missing image (those are skipped): the run
    # stops before any result, with one line naming the first unreadable image in pair order.
    line = assert_one_line_error((code, out), EXIT_BAD_INPUT)
    named = [k for k in kinds[:12] if str(corpus.image_files[k]) in line]
    assert len(named) == 1, line
    assert "Accuracy" not in out and "pairs skipped" not in out, out[-1500:]
    # Every odd image before it in pair order really is readable (e.g. a CMYK JPEG), so none was
    # passed over in silence.
    from PIL import Image

    for kind in kinds[: kinds.index(named[0])]:
        with Image.open(corpus.image_files[kind]) as im:
            im.convert("RGB").load()


# ---------------------------------------------------------------------------------------- board


def test_board_missing_logdir(tmp_path: Path) -> None:
    assert_one_line_error(invoke("board", tmp_path / "nope", "--once"), EXIT_BAD_INPUT,
                          tmp_path / "nope")  # fmt: skip


def test_board_logdir_is_a_file(corpus: BadInputs) -> None:
    assert_one_line_error(invoke("board", corpus.pairs_bad, "--once"), EXIT_BAD_INPUT,
                          corpus.pairs_bad)  # fmt: skip


def test_board_logdir_with_symlink_loops(corpus: BadInputs) -> None:
    code, out = invoke("board", corpus.loops, "--once")
    assert code == 0, out


def test_board_garbage_event_files(corpus: BadInputs, tmp_path: Path) -> None:
    run_dir = tmp_path / "logs" / "run1"
    run_dir.mkdir(parents=True)
    for kind in ("truncated_png", "text_as_jpg", "zero_byte", "huge_jpeg_header"):
        data = corpus.image_files[kind].read_bytes()
        (run_dir / f"events.out.tfevents.1.{kind}").write_bytes(data)
    code, out = invoke("board", tmp_path / "logs", "--once", "--json")
    assert code == 0, out
    assert "Traceback" not in out


# ------------------------------------------------------------------------------ pairs and export


def test_pairs_over_symlink_loops(corpus: BadInputs, tmp_path: Path) -> None:
    assert_one_line_error(invoke("pairs", corpus.loops, "--out", tmp_path / "p.txt"),
                          EXIT_BAD_INPUT, corpus.loops)  # fmt: skip


def test_pairs_over_non_ascii_names(corpus: BadInputs, tmp_path: Path) -> None:
    out = tmp_path / "p.txt"
    # Four identities of two images: four matched pairs (two folds of two) use every identity.
    # "with space" cannot be named by an LFW line, so the file is path-based and still names
    # every image.
    code, text = invoke("pairs", corpus.odd_paths, "--out", out, "--nrof-folds", "2",
                        "--pairs-per-fold", "2")  # fmt: skip
    assert code == 0, text
    written = out.read_text(encoding="utf-8")
    for name in ("名前", "Zoë", "José María", "with space"):
        assert f"{name}/" in written, (name, written)
    from facenet_cli.data.pairs import PathPair, read_pairs, resolve_pairs

    pairs = read_pairs(out)
    assert all(isinstance(p, PathPair) for p in pairs) and len(pairs) == 8
    assert len(resolve_pairs(corpus.odd_paths, pairs, strict=True).kept) == 8


def test_export_checkpoint_from_another_model(models: dict[str, Path], tmp_path: Path) -> None:
    done = invoke("export", models["foreign"], tmp_path / "exp")
    assert_one_line_error(done, EXIT_BAD_INPUT, models["foreign"])
    assert not (tmp_path / "exp").exists() or not any((tmp_path / "exp").iterdir())


def test_export_missing_source(tmp_path: Path) -> None:
    assert_one_line_error(invoke("export", tmp_path / "nope", tmp_path / "exp"), EXIT_BAD_INPUT,
                          tmp_path / "nope")  # fmt: skip


# ------------------------------------------------------------------------------- permissions


def test_unreadable_config_file(corpus: BadInputs, good: Path, tmp_path: Path) -> None:
    config = tmp_path / "locked.toml"
    config.write_text("batch_size = 6\n")
    if not make_unreadable(config):
        pytest.skip("chmod 000 does not stop reads here (running as root)")
    args = _train(good, tmp_path, "--model-def", "small")
    assert_one_line_error(invoke(args[0], "--config", config, *args[1:]), EXIT_BAD_INPUT, config)


def test_unreadable_pairs_file(corpus: BadInputs, models: dict[str, Path], good: Path,
                               tmp_path: Path) -> None:  # fmt: skip
    pairs = tmp_path / "locked.txt"
    pairs.write_text("1\t1\nid0\t1\t2\n")
    if not make_unreadable(pairs):
        pytest.skip("chmod 000 does not stop reads here (running as root)")
    done = invoke("validate", good, models["valid"], "--lfw-pairs", pairs)
    assert_one_line_error(done, EXIT_BAD_INPUT, pairs)


# ------------------------------------------------------------------------------------ --debug


def test_debug_shows_the_traceback_and_plain_does_not(tmp_path: Path) -> None:
    plain = run(cli("board", tmp_path / "nope", "--once"), timeout=120)
    assert_one_line_error(plain, EXIT_BAD_INPUT, tmp_path / "nope")
    debug = run(cli("--debug", "board", tmp_path / "nope", "--once"), timeout=120)
    assert debug.returncode == EXIT_BAD_INPUT
    assert "Traceback" in debug.stderr and f"{tmp_path / 'nope'}" in debug.stderr


def test_subprocess_output_is_one_line_for_an_input_error(corpus: BadInputs,
                                                          tmp_path: Path) -> None:  # fmt: skip
    done = run(cli("pairs", corpus.loops, "--out", tmp_path / "p.txt"), timeout=120)
    line = assert_one_line_error(done, EXIT_BAD_INPUT, corpus.loops)
    assert done.stderr.strip() == line
    assert isinstance(done, subprocess.CompletedProcess)


@pytest.mark.slow
def test_train_over_bad_images_skips_them(corpus: BadInputs, tmp_path: Path) -> None:
    import shutil

    data = make_image_tree(tmp_path / "ds", {f"id{i}": 4 for i in range(5)}, size=20)
    # Every broken image becomes one more image of a good identity, so sampling meets them.
    planted = []
    for i, (kind, src) in enumerate(sorted(corpus.image_files.items())):
        dst = data / f"id{i % 5}" / f"id{i % 5}_{10 + i:04d}{src.suffix}"
        if kind == "symlink_loop":
            dst.symlink_to(dst.name)
        elif kind == "dangling_symlink":
            dst.symlink_to("does-not-exist.jpg")
        else:
            shutil.copy(src, dst)
        planted.append((kind, dst))
    code, out = invoke(*_train(data, tmp_path, "--model-def", "small", "--max-steps", "4"))
    assert code == 0, out[-3000:]
    assert "Traceback" not in out
    flat = out.replace("\n", "")  # the console wraps long lines off a terminal
    named = {kind for kind, dst in planted if f"{dst}: unreadable image" in flat}
    assert named, out[-3000:]
    assert named <= UNDECODABLE, f"valid odd images were refused: {named - UNDECODABLE}"
